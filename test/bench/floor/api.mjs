// The send API's floor: a uWebSockets.js HTTP server whose POST /connections/<id>/messages becomes one
// NATS request to the floor gateway (raw-nats.mjs), answered 200 when the gateway replies "ok".
// No validation, no timeout, no auth: the least a separate API process can do.
// Usage: node api.mjs <nats-url>; prints {"port":N} when listening.
import uWS from 'uWebSockets.js';
import { connect } from './raw-nats.mjs';

const waiting = new Map();
let next = 0;
const nats = connect(process.argv[2], (subject, payload) => {
  const res = waiting.get(subject.slice(11)); // _INBOX.api.<n>
  if (!res) return;
  waiting.delete(subject.slice(11));
  const ok = payload.length === 2;
  if (!res.aborted) res.cork(() => res.writeStatus(ok ? '200 OK' : '410 Gone').end(ok ? '{"ok":true}' : '{"error":"gone"}'));
});
await nats.ready;
nats.subscribe('_INBOX.api.*', '', 1);
const app = uWS.App().post('/connections/:id/messages', (res, req) => {
  const subject = 'floor.send.' + req.getParameter(0);
  res.onAborted(() => (res.aborted = true));
  const chunks = [];
  res.onData((chunk, last) => {
    chunks.push(Buffer.from(chunk.slice(0)));
    if (!last) return;
    const n = String(++next);
    waiting.set(n, res);
    nats.publish(subject, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), '_INBOX.api.' + n);
  });
});
app.get('/connections', (res) => res.end(JSON.stringify({ connections: [] })));
app.listen('127.0.0.1', 0, (token) => {
  if (!token) process.exit(1);
  process.stdout.write(JSON.stringify({ port: uWS.us_socket_local_port(token) }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
