const decoder = new TextDecoder();

/** A frame's bytes and binary flag, read as text or JSON: a handler's message, a topic history entry. */
export class FrameBytes {
  readonly data: Uint8Array;
  readonly binary: boolean;
  constructor(data: Uint8Array, binary: boolean) {
    this.data = data;
    this.binary = binary;
  }
  text(): string {
    return decoder.decode(this.data);
  }
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}
