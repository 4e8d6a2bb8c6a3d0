// wsgw-client: a WebSocket client for wsgw gateways, for browsers (and Node with `ws`). No dependencies.
//
//   import { WsgwClient } from 'wsgw/client';           // or from a gateway: /wsgw-client.js
//   const c = new WsgwClient('wss://chat.example.com/ws?room=lobby', { token: () => fetchToken() });
//   c.on('message', (data) => ...); c.send('hello');
//
// It reconnects, with a growing random delay, when the gateway goes away or asks for it (the
// reconnect-hinting close codes of docs/protocol.md: draining, NATS outage, lease lost, token expired,
// maximum age, and lost connections), asking `token()` again before each attempt, so an expired
// token (4103) is replaced by a fresh one. It does not reconnect when the application closed the
// connection on purpose (1000, 4000-4099 and other application codes, 1008 and 1009 policy closes).
// Frames sent while it is not connected wait, in order, up to `maxQueue`.

/** Close codes after which a client should connect again (docs/protocol.md, Close codes). */
export const RECONNECT_CODES = Object.freeze([1001, 1005, 1006, 1011, 1012, 1013, 4100, 4101, 4102, 4103, 4104]);

/** The subprotocol entry that carries a token (the gateway never echoes it). */
const TOKEN_PREFIX = 'wsgw.bearer.';

const OPEN = 1;

export class WsgwClient {
  /** 'connecting', 'open', 'reconnecting' (waiting to connect again) or 'closed' (for good). */
  state = 'connecting';
  #url;
  #options;
  #ws = null;
  #queue = [];
  #listeners = new Map();
  #attempt = 0;
  #timer = null;
  #stopped = false;

  /**
   * @param {string} url  ws:// or wss:// URL of a gateway endpoint, with its query.
   * @param {object} [options]
   * @param {string | (() => string | Promise<string>)} [options.token]  a JWT, or a function asked before every attempt
   * @param {string[]} [options.protocols]  your subprotocols (with a token and none of yours, `wsgw` is offered)
   * @param {number} [options.maxQueue=1000]  frames kept while not connected; past it `send` returns false
   * @param {number} [options.initialDelay=250]  first reconnect delay bound, ms (each delay is random up to the bound)
   * @param {number} [options.maxDelay=10000]  the bound doubles per failed attempt up to this, ms
   * @param {(code: number) => boolean} [options.reconnect]  decides, per close code, whether to connect again
   * @param {typeof WebSocket} [options.WebSocket]  the WebSocket class (Node: `ws`); default the global one
   */
  constructor(url, options = {}) {
    this.#url = url;
    this.#options = { maxQueue: 1000, initialDelay: 250, maxDelay: 10_000, ...options };
    // after the caller's synchronous code: listeners added right after construction see every event
    queueMicrotask(() => this.#connect());
  }

  /**
   * Listens for 'open', 'message' (data: a string, or an ArrayBuffer for a binary frame), 'close'
   * ({ code, reason, reconnecting, delay }) and 'error'. Returns this.
   */
  on(event, listener) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(listener);
    return this;
  }

  off(event, listener) {
    this.#listeners.get(event)?.delete(listener);
    return this;
  }

  /** Sends now, or queues until connected; false when closed for good or the queue is full. */
  send(data) {
    if (this.#ws !== null && this.#ws.readyState === OPEN) {
      this.#ws.send(data);
      return true;
    }
    if (this.#stopped || this.#queue.length >= this.#options.maxQueue) return false;
    this.#queue.push(data);
    return true;
  }

  /** Frames waiting to be sent. */
  get queued() {
    return this.#queue.length;
  }

  /** Closes for good: no reconnect; queued frames are dropped. */
  close(code = 1000, reason = '') {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#queue = [];
    clearTimeout(this.#timer);
    // closed for good from now on; the 'close' event follows once the socket has closed
    this.state = 'closed';
    const ws = this.#ws;
    if (ws !== null && ws.readyState <= OPEN) ws.close(code, reason);
    else this.#closed({ code, reason, reconnecting: false, delay: 0 });
  }

  #emit(event, ...args) {
    for (const listener of this.#listeners.get(event) ?? []) {
      try {
        listener(...args);
      } catch (err) {
        // a listener's error must not stop the client; report it where it can be seen
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  #closed(info) {
    this.state = info.reconnecting ? 'reconnecting' : 'closed';
    this.#emit('close', info);
  }

  async #connect() {
    if (this.#stopped) return;
    let protocols = this.#options.protocols ?? [];
    if (this.#options.token !== undefined) {
      let token;
      try {
        token = typeof this.#options.token === 'function' ? await this.#options.token() : this.#options.token;
      } catch (err) {
        this.#emit('error', err);
        return this.#again(1006, 'token unavailable');
      }
      if (this.#stopped) return;
      protocols = [TOKEN_PREFIX + token, ...(protocols.length > 0 ? protocols : ['wsgw'])];
    }
    const Impl = this.#options.WebSocket ?? globalThis.WebSocket;
    let ws;
    try {
      ws = protocols.length > 0 ? new Impl(this.#url, protocols) : new Impl(this.#url);
    } catch (err) {
      // a URL or subprotocol the WebSocket refuses outright: trying again would not help
      this.#emit('error', err);
      this.#stopped = true;
      this.#queue = [];
      return this.#closed({ code: 1006, reason: String(err?.message ?? err), reconnecting: false, delay: 0 });
    }
    ws.binaryType = 'arraybuffer';
    this.#ws = ws;
    ws.onopen = () => {
      this.#attempt = 0;
      this.state = 'open';
      const waiting = this.#queue;
      this.#queue = [];
      for (const data of waiting) ws.send(data);
      this.#emit('open');
    };
    ws.onmessage = (e) => this.#emit('message', e.data, e);
    ws.onerror = (e) => this.#emit('error', e);
    ws.onclose = (e) => {
      this.#ws = null;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      if (this.#stopped) return this.#closed({ code: e.code, reason: e.reason, reconnecting: false, delay: 0 });
      this.#again(e.code, e.reason);
    };
  }

  /** After a close (or a failed token): connect again after a random delay, or close for good. */
  #again(code, reason) {
    const wanted = this.#options.reconnect ? this.#options.reconnect(code) : RECONNECT_CODES.includes(code);
    if (!wanted) {
      this.#stopped = true;
      this.#queue = [];
      return this.#closed({ code, reason, reconnecting: false, delay: 0 });
    }
    // full jitter: a gateway's clients, closed together by a drain, do not come back together
    const bound = Math.min(this.#options.maxDelay, this.#options.initialDelay * 2 ** this.#attempt++);
    const delay = Math.round(Math.random() * bound);
    this.#closed({ code, reason, reconnecting: true, delay });
    this.#timer = setTimeout(() => {
      if (this.#stopped) return;
      this.state = 'connecting';
      this.#connect();
    }, delay);
  }
}
