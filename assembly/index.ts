/**
 * Exports of the Hermod stanza core. The boundary is numeric and narrow (docs/architecture.md,
 * "WASM boundary"): JS creates a state per connection, asks `prepare` where to copy each chunk,
 * then calls `run` until it returns Ev.NeedMore, reading descriptors from the state block.
 */
import { ATTRS, RING, freeState, newState, prepare, resetState, rewind, run } from './tokenizer';
import { heapTop } from './alloc';

export { newState, freeState, resetState, prepare, run, rewind, heapTop };

/** Address of the attribute table (valid after Ev.StreamOpen). */
export function attrTable(): usize {
  return ATTRS;
}

/** Address of the descriptor ring (layout.ts R). */
export function ringAddr(): usize {
  return RING;
}

/** Bumped when the boundary (assembly/layout.ts) changes incompatibly. */
export function coreVersion(): i32 {
  return 2;
}
