// The bound: a bare uWebSockets.js echo in one process, no NATS. Prints {"port":N} when listening.
import uWS from 'uWebSockets.js';

const app = uWS.App().ws('/*', {
  maxPayloadLength: 1024 * 1024,
  idleTimeout: 0,
  message: (ws, message, isBinary) => ws.send(message, isBinary),
});
app.listen('127.0.0.1', 0, (token) => {
  if (!token) process.exit(1);
  process.stdout.write(JSON.stringify({ port: uWS.us_socket_local_port(token) }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
