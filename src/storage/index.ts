/**
 * The one entry point the server and the CLI use to reach storage. Both open the same
 * `<dataDir>/hermod.sqlite`; SQLite's WAL lets `hermod adduser` write while `hermod serve` runs.
 */
import { openSqliteStorage, type SqliteStorage, type SqliteStorageOptions } from './sqlite.js';

export type { SqliteStorage, SqliteStorageOptions as OpenStorageOptions } from './sqlite.js';
export { DATABASE_FILE } from './sqlite.js';
export { createMemoryStorage } from './memory.js';
export * from './types.js';
export { deriveStoredPassword, deriveStoredPasswordSync } from './password.js';

/** Open (creating when needed) the default SQLite storage; throws ConfigError when unusable. */
export function openStorage(options: SqliteStorageOptions): SqliteStorage {
  return openSqliteStorage(options);
}
