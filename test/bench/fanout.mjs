// Broadcast fan-out generator. Opens --subs subscribers spread over --urls and one publisher on the
// first URL; every connection is subscribed to one topic by the server. The publisher keeps --window
// broadcasts outstanding (a broadcast is done when it came back to the publisher itself) for
// --duration seconds after a one-second warm-up. Sockets are raw TCP after a real handshake: frames
// of a fixed size are counted from bytes (64-byte text frames are 66 bytes on the wire), so reading
// costs the shared CPU as little as possible. Prints {"deliveries","rate","broadcasts"}.
import { openRaw } from './raw-ws.mjs';
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

const open = (url, onBytes) => openRaw(url, { onBytes: (b) => onBytes(b.length) });

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
