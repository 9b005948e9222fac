/**
 * What one XEP-0313 query costs a large room archive in SQLite (the time a room query holds the
 * main thread with --workers N): a room of `--messages` messages from 50 senders, then the
 * queries clients make — the last page, the first page, one occupant's messages, one real JID's
 * (bare and full), a JID that never spoke — each timed `--repeat` times (median), with and
 * without the room flag that lets the store use its room indexes; then the start-up walk over
 * every archive owner (RoomArchives.sweep) over `--owners` user archives.
 *
 *   npm run build && node dist/bench/core/mam-query.js [--messages 200000] [--owners 50000] [--repeat 5] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { archiveIds, type ArchiveQuery } from '../../src/storage/archive.js';
import { openSqliteStorage } from '../../src/storage/sqlite.js';
import { nowNs, numArg, report, round, type Row } from './shard-common.js';

const messages = numArg('messages', 200_000);
const owners = numArg('owners', 50_000);
const repeat = numArg('repeat', 5);
const ROOM = 'big@conference.localhost';

const dir = mkdtempSync(join(tmpdir(), 'hermod-bench-mamq-'));
const storage = openSqliteStorage({ dataDir: dir, iterations: 1, archiveThread: false });
try {
  const ids = archiveIds();
  const t0 = Date.now() - messages * 1000;
  for (let i = 0; i < messages; i++) {
    const stamp = new Date(t0 + i * 1000);
    const nick = `n${i % 50}`;
    storage.mam.append({
      owner: ROOM,
      id: ids(stamp),
      stamp,
      with: `${ROOM}/${nick}`,
      stanza: `<message type='groupchat' from='${ROOM}/${nick}'><body>message number ${i} with some text</body></message>`,
      real: `u${i % 50}@localhost/r`,
    });
    if (i % 20_000 === 19_999) storage.mam.flush();
  }
  for (let i = 0; i < owners; i++) {
    const stamp = new Date(t0 + i);
    storage.mam.append({ owner: `user${i}@localhost`, id: ids(stamp), stamp, with: 'a@localhost/r', stanza: '<message/>' });
    if (i % 20_000 === 19_999) storage.mam.flush();
  }
  storage.mam.flush();

  const rows: Row[] = [];
  const cases: [string, Omit<ArchiveQuery, 'max'>][] = [
    ['last page (empty <before/>)', { before: '' }],
    ['first page', {}],
    ['with = one occupant JID (1/50 of the room)', { with: `${ROOM}/n7` }],
    ['real JID, bare (1/50 of the room)', { real: 'u7@localhost' }],
    ['real JID, full, last page', { real: 'u7@localhost/r', before: '' }],
    ['real JID that never spoke', { real: 'nobody@localhost' }],
  ];
  for (const [what, q] of cases) {
    for (const room of [false, true]) {
      const times: number[] = [];
      let count: number | undefined;
      for (let r = 0; r < repeat; r++) {
        const start = nowNs();
        count = storage.mam.query(ROOM, { max: 50, ...q, room }).count;
        times.push(Number(nowNs() - start) / 1e6);
      }
      times.sort((a, b) => a - b);
      rows.push({ case: what, 'room indexes': room ? 'yes' : 'no', 'median ms': round(times[Math.floor(times.length / 2)]!), count: count ?? '(over cap)' });
    }
  }
  const start = nowNs();
  let walked = 0;
  for (let o = storage.mam.nextOwner!(''); o !== null; o = storage.mam.nextOwner!(o)) walked++;
  const walkMs = Number(nowNs() - start) / 1e6;
  rows.push({ case: `walk over ${walked} archive owners (sweep)`, 'room indexes': '-', 'median ms': round(walkMs), count: `${round((walkMs * 1000) / walked)} µs/owner` });
  report(`XEP-0313 queries on a ${messages}-message room archive (SQLite), median of ${repeat}`, rows);
} finally {
  storage.close();
  rmSync(dir, { recursive: true, force: true });
}
