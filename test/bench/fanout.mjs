// Broadcast fan-out generator. Opens --subs subscribers spread over --urls and one publisher on the
// first URL; every connection is subscribed to one topic by the server. The publisher keeps --window
// broadcasts outstanding (a broadcast is done when it came back to the publisher itself) for
// --duration seconds after a one-second warm-up. Sockets are raw TCP after a real handshake: frames
// of a fixed size are counted from bytes (64-byte text frames are 66 bytes on the wire), so reading
// costs the shared CPU as little as possible. Prints {"deliveries","rate","broadcasts"}.
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    urls: { type: 'string' },
    subs: { type: 'string', default: '1000' },
    window: { type: 'string', default: '32' },
    duration: { type: 'string', default: '5' },
  },
});
const urls = o.urls.split(',').map((u) => new URL(u));
const subs = Math.min(Number(o.subs), 15_000);
const windowSize = Number(o.window);
const durationMs = Math.min(Number(o.duration), 120) * 1000;
const SIZE = 64;
const WIRE = SIZE + 2;
const frame = Buffer.concat([Buffer.from([0x81, 0x80 | SIZE, 0, 0, 0, 0]), Buffer.alloc(SIZE, 'x')]); // zero mask

function open(url, onBytes) {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    let head = '';
    const onHandshake = (chunk) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
      socket.off('data', onHandshake);
      if (head.length > end + 4) onBytes(head.length - end - 4);
      socket.on('data', (b) => onBytes(b.length));
      resolve(socket);
    };
    socket.on('data', onHandshake);
    socket.once('error', reject);
    socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
}

let bytes = 0;
for (let i = 0; i < subs; i += 200) {
  await Promise.all(Array.from({ length: Math.min(200, subs - i) }, (_, k) => open(urls[(i + k) % urls.length], (n) => (bytes += n))));
}
let pubBytes = 0;
let sent = 0;
let pumping = false;
let stopped = false;
const pub = await open(urls[0], (n) => {
  pubBytes += n;
  if (pumping) pump();
});
// subscriptions are made by the server on open (over NATS for wsgw): wait until one broadcast reaches
// every subscriber before measuring
const allJoined = async () => {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const before = bytes;
    pub.write(frame);
    sent++;
    await new Promise((r) => setTimeout(r, 200));
    if (bytes - before >= subs * WIRE) return;
  }
  throw new Error('not every subscriber joined the topic within 20 s');
};
await allJoined();
pumping = true;
sent = Math.floor(pubBytes / WIRE); // the join probes are all back or lost; start the window afresh
function pump() {
  while (!stopped && sent - Math.floor(pubBytes / WIRE) < windowSize) {
    pub.write(frame);
    sent++;
  }
}
pump();
await new Promise((r) => setTimeout(r, 1000));
const startBytes = bytes + pubBytes;
const startAt = performance.now();
await new Promise((r) => setTimeout(r, durationMs));
const deliveries = Math.floor((bytes + pubBytes - startBytes) / WIRE);
const seconds = (performance.now() - startAt) / 1000;
stopped = true;
process.stdout.write(JSON.stringify({ deliveries, rate: Math.round(deliveries / seconds), broadcasts: Math.round(deliveries / (subs + 1) / seconds), conns: subs + 1 }) + '\n');
process.exit(0);
