/** Ids per chunk before a chunk is split in two. */
const CHUNK = 512;

/** The first index in `a` (sorted) whose element is greater than `id`, or, with `orEqual`, not less. */
function bound(a: readonly string[], id: string, orEqual: boolean): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! < id || (!orEqual && a[mid] === id)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A set of ids kept in order, in sorted chunks of at most 2 × 512: adding, removing and finding where
 * a page starts cost two binary searches and a short splice, never a pass over every id. (Sorting the
 * ids for each `GET /connections` held the event loop for 220-270 ms at 100k connections.)
 */
export class SortedIds {
  /** Non-empty sorted chunks, each one's ids all below the next one's. */
  readonly #chunks: string[][] = [];
  #size = 0;

  /** The set of `sorted` (ascending, no repeats), in one pass. */
  static of(sorted: readonly string[]): SortedIds {
    const set = new SortedIds();
    for (let i = 0; i < sorted.length; i += CHUNK) set.#chunks.push(sorted.slice(i, i + CHUNK));
    set.#size = sorted.length;
    return set;
  }

  get size(): number {
    return this.#size;
  }

  /** The chunk that holds `id` or would: the first whose last id is not below it (the last chunk past them all). */
  #chunkOf(id: string): number {
    let lo = 0;
    let hi = this.#chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const c = this.#chunks[mid]!;
      if (c[c.length - 1]! < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds `id`; false when it was there already. */
  add(id: string): boolean {
    if (this.#chunks.length === 0) {
      this.#chunks.push([id]);
      this.#size = 1;
      return true;
    }
    const k = Math.min(this.#chunkOf(id), this.#chunks.length - 1);
    const chunk = this.#chunks[k]!;
    const i = bound(chunk, id, true);
    if (chunk[i] === id) return false;
    chunk.splice(i, 0, id);
    this.#size++;
    if (chunk.length > 2 * CHUNK) this.#chunks.splice(k + 1, 0, chunk.splice(CHUNK));
    return true;
  }

  /** Removes `id`; false when it was not there. */
  delete(id: string): boolean {
    const k = this.#chunkOf(id);
    const chunk = this.#chunks[k];
    if (chunk === undefined) return false;
    const i = bound(chunk, id, true);
    if (chunk[i] !== id) return false;
    chunk.splice(i, 1);
    this.#size--;
    if (chunk.length === 0) this.#chunks.splice(k, 1);
    return true;
  }

  /** The ids in order, from the first greater than `after` (from the first of all without it). */
  *after(after?: string): Generator<string, void, undefined> {
    let k = after === undefined ? 0 : this.#chunkOf(after);
    let i = after === undefined ? 0 : bound(this.#chunks[k] ?? [], after, false);
    for (; k < this.#chunks.length; k++, i = 0) {
      const chunk = this.#chunks[k]!;
      for (; i < chunk.length; i++) yield chunk[i]!;
    }
  }
}

/**
 * Sorted ids per key (per topic, per user): the ids of a key in order, a lone id kept as itself
 * rather than in a set of its own (most users have one connection, and a topic per user has one
 * subscriber; a set costs about 300 bytes more).
 */
export class IdIndex {
  readonly #byKey = new Map<string, string | SortedIds>();

  /** An index of `lists` (each key's ids ascending, no repeats), made in one pass. */
  static of(lists: Map<string, string[]>): IdIndex {
    const index = new IdIndex();
    for (const [key, ids] of lists) if (ids.length > 0) index.#byKey.set(key, ids.length === 1 ? ids[0]! : SortedIds.of(ids));
    return index;
  }

  /** How many keys have ids. */
  get size(): number {
    return this.#byKey.size;
  }

  add(key: string, id: string): void {
    const held = this.#byKey.get(key);
    if (held === undefined) this.#byKey.set(key, id);
    else if (typeof held !== 'string') held.add(id);
    else if (held !== id) this.#byKey.set(key, SortedIds.of(held < id ? [held, id] : [id, held]));
  }

  delete(key: string, id: string): void {
    const held = this.#byKey.get(key);
    if (held === undefined) return;
    if (typeof held === 'string') {
      if (held === id) this.#byKey.delete(key);
    } else if (held.delete(id)) {
      if (held.size === 0) this.#byKey.delete(key);
      else if (held.size === 1) this.#byKey.set(key, held.after().next().value!);
    }
  }

  /** Moves `id` from the keys it left to those it joined (a record's topics before and after). */
  move(id: string, from: readonly string[], to: readonly string[]): void {
    if (from.length > 0) {
      const staying = new Set(to);
      for (const key of from) if (!staying.has(key)) this.delete(key, id);
    }
    for (const key of to) this.add(key, id);
  }

  /** How many ids `key` has. */
  count(key: string): number {
    const held = this.#byKey.get(key);
    return held === undefined ? 0 : typeof held === 'string' ? 1 : held.size;
  }

  /** `key`'s ids in order, from the first greater than `after` (from the first of all without it). */
  after(key: string, after?: string): Iterable<string> {
    const held = this.#byKey.get(key);
    if (held === undefined) return [];
    if (typeof held !== 'string') return held.after(after);
    return after === undefined || held > after ? [held] : [];
  }
}
