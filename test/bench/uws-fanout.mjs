// The bound for broadcast fan-out: uWebSockets.js's own in-process publish. Every connection joins
// topic "fan"; every frame received is published to it.
import uWS from 'uWebSockets.js';

const app = uWS.App().ws('/*', {
  maxBackpressure: 16 * 1024 * 1024,
  open: (ws) => ws.subscribe('fan'),
  message: (_ws, data, isBinary) => app.publish('fan', data, isBinary),
});
app.listen('127.0.0.1', 0, (token) => {
  if (!token) process.exit(1);
  process.stdout.write(JSON.stringify({ port: uWS.us_socket_local_port(token) }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
