// Holds N WebSocket connections to a gateway and reads everything they receive (so the API benchmark
// measures the API, not a client's backpressure). The sockets are raw TCP after a real WebSocket
// handshake: received bytes are counted, not parsed into frames, so the sink costs the shared CPU as
// little as a client can. Prints {"ready":N} when all are open and {"receivedBytes":M} on SIGTERM.
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';

const [url, n] = [new URL(process.argv[2]), Number(process.argv[3] ?? 1)];
let receivedBytes = 0;

function open() {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    let head = '';
    const onHandshake = (chunk) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
      socket.off('data', onHandshake);
      receivedBytes += head.length - end - 4;
      socket.on('data', (b) => (receivedBytes += b.length));
      resolve(socket);
    };
    socket.on('data', onHandshake);
    socket.once('error', reject);
    socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
}

const sockets = await Promise.all(Array.from({ length: Math.min(n, 5000) }, open));
process.stdout.write(JSON.stringify({ ready: sockets.length }) + '\n');
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ receivedBytes }) + '\n');
  process.exit(0);
});
