// Holds N WebSocket connections to a gateway and reads everything they receive (so the API benchmark
// measures the API, not a client's backpressure). Raw sockets after a real handshake: received bytes
// are counted, not parsed into frames, so the sink costs the shared CPU as little as a client can.
// Prints {"ready":N} when all are open and {"receivedBytes":M} on SIGTERM.
import { openRaw } from './raw-ws.mjs';

const [url, n] = [process.argv[2], Number(process.argv[3] ?? 1)];
let receivedBytes = 0;
const sockets = await Promise.all(Array.from({ length: Math.min(n, 5000) }, () => openRaw(url, { onBytes: (b) => (receivedBytes += b.length) })));
process.stdout.write(JSON.stringify({ ready: sockets.length }) + '\n');
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ receivedBytes }) + '\n');
  process.exit(0);
});
