// Holds N WebSocket connections to a gateway and reads everything they receive (so the API benchmark
// measures the API, not a client's backpressure). Prints {"ready":N} when all are open and
// {"received":M} on SIGTERM.
import WebSocket from 'ws';

const [url, n] = [process.argv[2], Number(process.argv[3] ?? 1)];
let received = 0;
const sockets = await Promise.all(
  Array.from({ length: Math.min(n, 5000) }, () => new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on('message', () => received++);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  })),
);
process.stdout.write(JSON.stringify({ ready: sockets.length }) + '\n');
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ received }) + '\n');
  process.exit(0);
});
