/** Close codes after which a client should connect again (docs/protocol.md, Close codes). */
export declare const RECONNECT_CODES: readonly number[];

export interface WsgwClientOptions {
  /** A JWT, or a function asked before every attempt (so an expired token is replaced). Sent as the `wsgw.bearer.<jwt>` subprotocol. */
  token?: string | (() => string | Promise<string>);
  /** Your subprotocols (with a token and none of yours, `wsgw` is offered). */
  protocols?: string[];
  /** Frames kept while not connected (default 1000); past it `send` returns false. */
  maxQueue?: number;
  /** First reconnect delay bound in ms (default 250); each delay is random up to the bound. */
  initialDelay?: number;
  /** The bound doubles per failed attempt up to this, in ms (default 10000). */
  maxDelay?: number;
  /** Decides, per close code, whether to connect again (default: the codes in RECONNECT_CODES). */
  reconnect?: (code: number) => boolean;
  /** The WebSocket class (Node: the `ws` package); default the global one. */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
}

export interface WsgwCloseInfo {
  code: number;
  reason: string;
  /** True when the client will connect again, after `delay` ms. */
  reconnecting: boolean;
  delay: number;
}

export declare class WsgwClient {
  constructor(url: string, options?: WsgwClientOptions);
  /** 'connecting', 'open', 'reconnecting' (waiting to connect again) or 'closed' (for good). */
  readonly state: 'connecting' | 'open' | 'reconnecting' | 'closed';
  /** Frames waiting to be sent. */
  readonly queued: number;
  on(event: 'open', listener: () => void): this;
  on(event: 'message', listener: (data: string | ArrayBuffer, event: MessageEvent) => void): this;
  on(event: 'close', listener: (info: WsgwCloseInfo) => void): this;
  on(event: 'error', listener: (error: unknown) => void): this;
  off(event: string, listener: (...args: never[]) => void): this;
  /** Sends now, or queues until connected; false when closed for good or the queue is full. */
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): boolean;
  /** Closes for good: no reconnect; queued frames are dropped. */
  close(code?: number, reason?: string): void;
}
