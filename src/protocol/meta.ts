import { WsgwError } from '../errors/errors.js';

/**
 * A connection's metadata: string values under short keys, set by the application (a handler, a
 * worker, the bridge's answers, the connection service, the authorizer) and carried by the gateway
 * on every later event of the connection, so a stateless worker or HTTP application knows who sent a
 * frame without keeping a table of its own (Pushpin's Set-Meta, AnyCable's connection state).
 */
export type Meta = Readonly<Record<string, string>>;

/** Keys and values to set; a null value removes its key. */
export type MetaPatch = Readonly<Record<string, string | null>>;

export const META_LIMITS = {
  /** Keys a connection may hold. */
  keys: 32,
  /** Longest key, in characters (`[A-Za-z0-9_-]`). */
  keyLength: 64,
  /** Longest value, in characters. */
  valueLength: 1024,
  /** Largest metadata as the header's JSON, in bytes. */
  bytes: 4096,
} as const;

const KEY = /^[A-Za-z0-9_-]{1,64}$/;

export class InvalidMetaError extends WsgwError {
  constructor(message: string) {
    super('WSGW_INVALID_META', message);
  }
}

/** Validates a patch (a JSON object of strings or nulls); throws InvalidMetaError saying what is wrong. */
export function parseMetaPatch(value: unknown): MetaPatch {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidMetaError('metadata must be a JSON object of strings (null removes a key)');
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > META_LIMITS.keys) throw new InvalidMetaError(`at most ${META_LIMITS.keys} metadata keys`);
  for (const [k, v] of entries) {
    if (!KEY.test(k)) throw new InvalidMetaError(`metadata key ${JSON.stringify(k.slice(0, 80))} must be 1-${META_LIMITS.keyLength} characters of A-Z a-z 0-9 _ -`);
    if (v !== null && typeof v !== 'string') throw new InvalidMetaError(`metadata value of ${JSON.stringify(k)} must be a string or null`);
    if (typeof v === 'string' && v.length > META_LIMITS.valueLength) throw new InvalidMetaError(`metadata value of ${JSON.stringify(k)} is longer than ${META_LIMITS.valueLength} characters`);
  }
  return value as MetaPatch;
}

function merge(current: Meta | null, patch: MetaPatch): Record<string, string> {
  const next: Record<string, string> = { ...current };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete next[k];
    else next[k] = v;
  }
  return next;
}

/** `current` with `patch` applied, or null when nothing is left; throws InvalidMetaError past the limits. */
export function applyMetaPatch(current: Meta | null, patch: MetaPatch): Meta | null {
  const next = merge(current, patch);
  const keys = Object.keys(next).length;
  if (keys === 0) return null;
  if (keys > META_LIMITS.keys) throw new InvalidMetaError(`a connection holds at most ${META_LIMITS.keys} metadata keys`);
  if (metaJson(next).length > META_LIMITS.bytes) throw new InvalidMetaError(`metadata larger than ${META_LIMITS.bytes} bytes`);
  return next;
}

/**
 * The metadata as JSON in ASCII (characters past `~` escaped as `\uXXXX`), so it is the same bytes in
 * a NATS header, an HTTP header and a record; '' for none.
 */
export function metaJson(meta: Meta | null): string {
  if (meta === null) return '';
  return JSON.stringify(meta).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/** A `Wsgw-Meta` header's value read back; {} for none or for anything that is not an object of strings. */
export function parseMetaJson(text: string): Meta {
  if (text === '') return EMPTY_META;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string')) return v as Meta;
  } catch {
    // fall through
  }
  return EMPTY_META;
}

export const EMPTY_META: Meta = Object.freeze({});

/** Answered changes kept one by one; past this many they are merged into one. */
const MAX_ANSWERED = 16;

/** A change a process asked the owning gateway for, until later events carry it. */
interface Asked {
  readonly patch: MetaPatch;
  /** The last frame the gateway published without it; Infinity until it answered. */
  after: number;
}

/**
 * A connection's metadata as a consumer of its events (a worker, the bridge) shows it: what the event
 * carries, which is the gateway's when it published it, with the changes this process asked for that
 * the event may predate. The gateway answers a change with the last frame it published without it,
 * so a frame already on its way when the application set metadata shows the change too, and one
 * published after it shows the gateway's own (with any change made elsewhere since).
 */
export class MetaView {
  #asked: Asked[] = [];
  #json = '';
  #carried: Meta = EMPTY_META;

  /** The metadata for an event carrying `json` ('' for none): frame `seq`; 0 for an open, Infinity for a close. */
  see(json: string, seq: number): Meta {
    if (json !== this.#json) {
      this.#json = json;
      this.#carried = parseMetaJson(json);
    }
    // a change answered at frame `after` is in every event published after it; a close comes last
    if (this.#asked.length > 0) this.#asked = this.#asked.filter((a) => seq <= a.after);
    return this.current;
  }

  /** `see` as metaJson: the event's own JSON (no new one) once none of this process's changes is pending. */
  seeJson(json: string, seq: number): string {
    const meta = this.see(json, seq);
    return this.#asked.length === 0 ? json : metaJson(meta);
  }

  get current(): Meta {
    let meta: Meta = this.#carried;
    for (const a of this.#asked) meta = merge(meta, a.patch);
    return meta;
  }

  /** A change asked for: shown at once. */
  ask(patch: MetaPatch): Asked {
    const a: Asked = { patch, after: Infinity };
    this.#asked.push(a);
    return a;
  }

  /** The gateway applied it after frame `seq`. */
  applied(a: Asked, seq: number): void {
    a.after = seq;
    // a connection that gets many changes and no frames: the answered ones at the front become one
    // (shown until a frame published after the last of them), so the list stays short
    let answered = 0;
    while (answered < this.#asked.length && this.#asked[answered]!.after !== Infinity) answered++;
    if (answered > MAX_ANSWERED) {
      let patch: MetaPatch = {};
      let after = 0;
      for (const x of this.#asked.slice(0, answered)) {
        patch = { ...patch, ...x.patch };
        after = Math.max(after, x.after);
      }
      this.#asked = [{ patch, after }, ...this.#asked.slice(answered)];
    }
  }

  /** Changes kept (for tests). */
  get size(): number {
    return this.#asked.length;
  }

  /** The gateway refused it, or the connection is gone. */
  dropped(a: Asked): void {
    this.#asked = this.#asked.filter((x) => x !== a);
  }
}
