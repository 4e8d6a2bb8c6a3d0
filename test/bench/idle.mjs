// Idle-connection generator: opens --conns WebSocket connections (real handshakes over raw TCP, so one
// process can hold many cheaply) from the given loopback source addresses, --concurrency handshakes
// at a time, then holds them, answering pings, until SIGTERM. One source address has ~28k ephemeral
// ports and slows down badly well before that, so connections are spread over --addrs.
// Prints {"opened","failed","ms"} once every connection was tried, and {"closedEarly"} on SIGTERM.
import { openRaw } from './raw-ws.mjs';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    url: { type: 'string' },
    conns: { type: 'string', default: '1000' },
    addrs: { type: 'string', default: '127.0.0.1' },
    concurrency: { type: 'string', default: '256' },
  },
});
const url = new URL(o.url);
// one process here holds at most ~20k descriptors
const total = Math.min(Number(o.conns), 18_000);
const addrs = o.addrs.split(',');
let opened = 0;
let failed = 0;
let closedEarly = 0;
let stopping = false;
const sockets = [];

/** Answers pings; everything else an idle client receives is ignored. Server frames are unmasked. */
function onFrames(socket) {
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 2) {
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) [len, off] = buf.length >= 4 ? [buf.readUInt16BE(2), 4] : [-1, 0];
      else if (len === 127) [len, off] = buf.length >= 10 ? [Number(buf.readBigUInt64BE(2)), 10] : [-1, 0];
      if (len < 0 || buf.length < off + len) return;
      if ((buf[0] & 0x0f) === 0x9 && len <= 125) {
        // pong with the ping's payload, masked with a zero key (a client must mask)
        socket.write(Buffer.concat([Buffer.from([0x8a, 0x80 | len, 0, 0, 0, 0]), buf.subarray(off, off + len)]));
      }
      buf = buf.subarray(off + len);
    }
  });
}

async function open(i) {
  try {
    const socket = await openRaw(url, { localAddress: addrs[i % addrs.length] });
    opened++;
    sockets.push(socket);
    socket.once('close', () => stopping || closedEarly++);
    onFrames(socket);
  } catch {
    failed++;
  }
}

const started = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(Number(o.concurrency), total) }, async () => {
    while (next < total) await open(next++);
  }),
);
process.stdout.write(JSON.stringify({ opened, failed, ms: Math.round(performance.now() - started) }) + '\n');
process.on('SIGTERM', () => {
  stopping = true;
  process.stdout.write(JSON.stringify({ closedEarly }) + '\n');
  for (const s of sockets) s.destroy();
  process.exit(0);
});
// hold at most 10 minutes whatever happens to the orchestrator
setTimeout(() => process.exit(0), 600_000).unref();
setInterval(() => undefined, 60_000);
