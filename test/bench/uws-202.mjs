// The bound for the HTTP API: a bare uWebSockets.js endpoint that reads the body and answers 202.
import uWS from 'uWebSockets.js';

const app = uWS.App().any('/*', (res) => {
  res.onAborted(() => undefined);
  res.onData((_chunk, isLast) => {
    if (isLast) res.cork(() => res.writeStatus('202 Accepted').end('{"ok":true}'));
  });
});
app.listen('127.0.0.1', 0, (token) => {
  if (!token) process.exit(1);
  process.stdout.write(JSON.stringify({ port: uWS.us_socket_local_port(token) }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
