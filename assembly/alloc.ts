/**
 * A small size-class allocator for parser states and their retained input. The runtime is the
 * `stub` one (no GC, no free): the core allocates nothing managed, so it carries its own
 * power-of-two free lists. Blocks never move; freed blocks are reused by the same class.
 * Block: [class i32][next-free i32][payload…]; the payload is 8-byte aligned.
 */

const HDR: usize = 8;
const MIN_CLASS: i32 = 5; // 32-byte blocks
const FREE: usize = memory.data(32 * 4, 16);
let top: usize = 0;

@inline
function classOf(size: usize): i32 {
  const need = <u32>(size + HDR);
  const k = 32 - clz<u32>(need - 1);
  return k < MIN_CLASS ? MIN_CLASS : k;
}

export function alloc(size: usize): usize {
  const k = classOf(size);
  const slot = FREE + (<usize>k << 2);
  const head = load<u32>(slot);
  if (head != 0) {
    store<u32>(slot, load<u32>(<usize>head + 4));
    return <usize>head + HDR;
  }
  if (top == 0) top = (__heap_base + 15) & ~(<usize>15);
  const blk = top;
  const blkEnd = blk + (<usize>1 << k);
  const have = <usize>memory.size() << 16;
  if (blkEnd > have) {
    const pages = <i32>((blkEnd - have + 0xffff) >> 16);
    if (memory.grow(pages) < 0) unreachable();
  }
  top = blkEnd;
  store<i32>(blk, k);
  return blk + HDR;
}

export function free(ptr: usize): void {
  if (ptr == 0) return;
  const blk = ptr - HDR;
  const slot = FREE + (<usize>load<i32>(blk) << 2);
  store<u32>(blk + 4, load<u32>(slot));
  store<u32>(slot, <u32>blk);
}

/** Usable bytes of a block returned by alloc. */
export function capacity(ptr: usize): i32 {
  return (1 << load<i32>(ptr - HDR)) - <i32>HDR;
}

/** Bytes reserved from linear memory so far (for memory accounting tests). */
export function heapTop(): usize {
  return top;
}
