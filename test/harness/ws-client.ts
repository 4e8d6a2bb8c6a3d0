import WebSocket from 'ws';

export interface Frame {
  readonly data: Buffer;
  readonly binary: boolean;
  text(): string;
  json<T = any>(): T;
}

/** A real WebSocket client whose frames can be awaited in order, with deadlines. */
export class TestClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  #waiters: Array<() => void> = [];
  closed: { code: number; reason: string } | null = null;
  #closedWaiters: Array<() => void> = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer, binary: boolean) => {
      this.frames.push({ data, binary, text: () => data.toString('utf8'), json: () => JSON.parse(data.toString('utf8')) });
      for (const w of this.#waiters.splice(0)) w();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of [...this.#closedWaiters.splice(0), ...this.#waiters.splice(0)]) w();
    });
    ws.on('error', () => undefined);
  }

  static connect(url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options.protocols, options);
      const client = new TestClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body })));
      });
      ws.once('error', reject);
    });
  }

  /**
   * connect(), and again when the server drops the connection as it opens, as a real client would
   * reconnect: uWebSockets.js 3.0.6 now and then drops a connection upgraded after an asynchronous
   * check (JWT, `--authorize`) at that moment (docs/reliability.md, Known limits). A ping's answer
   * says the connection stayed open. At most three tries; the last client is returned either way.
   */
  static async connectKept(url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<TestClient> {
    for (let tries = 1; ; tries++) {
      const c = await TestClient.connect(url, options);
      const open = await new Promise<boolean>((resolve) => {
        if (c.ws.readyState !== WebSocket.OPEN) return resolve(false);
        c.ws.once('pong', () => resolve(true));
        c.ws.once('close', () => resolve(false));
        c.ws.ping();
      });
      if (open || tries === 3) return c;
    }
  }

  send(data: string | Buffer | Uint8Array, binary?: boolean): void {
    this.ws.send(data, { binary: binary ?? typeof data !== 'string' });
  }

  /** Waits until at least `count` frames arrived (or the deadline passes). */
  async waitFrames(count: number, timeoutMs = 5_000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length < count) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) throw new Error(`expected ${count} frames, got ${this.frames.length}${this.closed ? ` (closed ${this.closed.code} ${this.closed.reason})` : ''}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames.slice(0, count);
  }

  /** The next frame not yet taken by `next()`. */
  #taken = 0;
  async next(timeoutMs = 5_000): Promise<Frame> {
    await this.waitFrames(this.#taken + 1, timeoutMs);
    return this.frames[this.#taken++]!;
  }

  /** Waits for the next frame whose JSON matches `pred`, skipping others. */
  async nextJson<T = any>(pred: (v: any) => boolean, timeoutMs = 5_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      const v = f.json();
      if (pred(v)) return v as T;
    }
  }

  async waitClosed(timeoutMs = 5_000): Promise<{ code: number; reason: string }> {
    if (this.closed) return this.closed;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('socket did not close in time')), timeoutMs);
      this.#closedWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.closed!;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.ws.close();
    await this.waitClosed().catch(() => this.ws.terminate());
  }
}

/** Polls `check` until it returns a truthy value or the deadline passes (for state with no event, like KV). */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 5_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
