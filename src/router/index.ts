/** createRouter(): the router with Hermod's default modules. */
import { defaultModules, packageVersion } from '../modules/index.js';
import { HermodRouter, type RouterOptions } from './router.js';

export type { RouterOptions } from './router.js';
export { HermodRouter } from './router.js';
export type * from './context.js';
export { HookBus, FeatureRegistry } from './hooks.js';
export { SessionState } from './session.js';

export function createRouter(options: RouterOptions): HermodRouter {
  return new HermodRouter({ ...options, version: options.version ?? packageVersion() }, options.modules ?? defaultModules(options));
}
