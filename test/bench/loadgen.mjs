// WebSocket load generator: closed loop (each connection keeps `inflight` frames outstanding) or fixed
// rate (frames sent on a timer spread over connections). Echo order is FIFO per connection, so latency
// is measured against a per-connection queue of send times. Bounded by --duration and --max-conns.
// Prints one JSON line with the result.
import WebSocket from 'ws';
import hdr from 'hdr-histogram-js';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    url: { type: 'string' },
    conns: { type: 'string', default: '100' },
    inflight: { type: 'string', default: '10' },
    size: { type: 'string', default: '64' },
    binary: { type: 'boolean', default: false },
    // offer permessage-deflate (a gateway with --compression then compresses both ways)
    deflate: { type: 'boolean', default: false },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    rate: { type: 'string', default: '0' },
  },
});
const conns = Math.min(Number(o.conns), 10_000);
const inflight = Number(o.inflight);
const durationMs = Math.min(Number(o.duration), 120) * 1000;
const warmupMs = Number(o.warmup) * 1000;
const rate = Number(o.rate);
const payload = o.binary ? Buffer.alloc(Number(o.size), 7) : 'x'.repeat(Number(o.size));

const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
let measuring = false;
let done = false;
let received = 0;
let errors = 0;
let closedEarly = 0;

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: o.deflate });
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const sockets = [];
for (let i = 0; i < conns; i += 200) {
  const batch = await Promise.allSettled(Array.from({ length: Math.min(200, conns - i) }, () => open(o.url)));
  for (const r of batch) r.status === 'fulfilled' ? sockets.push(r.value) : errors++;
}

for (const ws of sockets) {
  const sent = [];
  ws.on('message', () => {
    const t0 = sent.shift();
    if (measuring) {
      received++;
      histogram.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
    }
    if (!done && rate === 0) {
      sent.push(performance.now());
      ws.send(payload);
    }
  });
  ws.on('close', () => {
    if (!done) closedEarly++;
  });
  ws.on('error', () => errors++);
  ws.sendTimes = sent;
  if (rate === 0) {
    for (let k = 0; k < inflight; k++) {
      sent.push(performance.now());
      ws.send(payload);
    }
  }
}

let timer = null;
// no connection opened: nothing to send on (the result says so through conns and errors)
if (rate > 0 && sockets.length > 0) {
  // fixed offered load: frames owed since the last tick (timer ticks drift, so count time, not ticks)
  let next = 0;
  let owed = 0;
  let last = performance.now();
  timer = setInterval(() => {
    const now = performance.now();
    owed += ((now - last) * rate) / 1000;
    last = now;
    while (owed >= 1) {
      const ws = sockets[next++ % sockets.length];
      ws.sendTimes.push(now);
      ws.send(payload);
      owed--;
    }
  }, 1);
}

await new Promise((r) => setTimeout(r, warmupMs));
measuring = true;
const start = performance.now();
await new Promise((r) => setTimeout(r, durationMs));
measuring = false;
const elapsed = (performance.now() - start) / 1000;
done = true;
if (timer) clearInterval(timer);
for (const ws of sockets) ws.terminate();
process.stdout.write(
  JSON.stringify({
    conns: sockets.length,
    rate: Math.round(received / elapsed),
    p50ms: histogram.getValueAtPercentile(50) / 1000,
    p99ms: histogram.getValueAtPercentile(99) / 1000,
    maxms: histogram.maxValue / 1000,
    errors,
    closedEarly,
  }) + '\n',
);
process.exit(0);
