// A WebSocket client at its cheapest, for benchmark load: a real RFC 6455 handshake over a plain TCP
// socket, then the raw byte stream (no frame parsing unless the caller does it). Used where the
// generator must cost the shared CPU as little as possible: sinks, fan-out subscribers, idle holders.
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';

/**
 * Opens `url` (ws://host:port/path), from `localAddress` when given. Resolves with the socket once
 * the server answered 101; `onBytes` then gets every received chunk (and any bytes that arrived with
 * the handshake). Rejects on a refused upgrade or a socket error before it.
 */
export function openRaw(url, { localAddress, onBytes = () => undefined } = {}) {
  const u = typeof url === 'string' ? new URL(url) : url;
  return new Promise((resolve, reject) => {
    const socket = connect({ port: Number(u.port), host: u.hostname, localAddress });
    let head = '';
    const fail = (err) => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    const onHandshake = (chunk) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onHandshake);
      socket.off('error', fail);
      if (!head.startsWith('HTTP/1.1 101')) return fail(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
      socket.on('error', () => undefined);
      socket.on('data', onBytes);
      if (head.length > end + 4) onBytes(Buffer.from(head.slice(end + 4), 'latin1'));
      resolve(socket);
    };
    socket.on('data', onHandshake);
    socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
}
