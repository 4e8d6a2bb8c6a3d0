// The floor's gateway: uWebSockets.js frames published to NATS by raw-nats.mjs, one NATS message per
// frame carrying the contract's headers and reply subject, replies sent back corked; `floor.send.<id>`
// requests (the send API floor) answered "ok". No KV, no validation, no routes: the least a gateway
// keeping the wire contract can do.
// Usage: node gateway.mjs <nats-url>; prints {"port":N} when listening.
import uWS from 'uWebSockets.js';
import { connect } from './raw-nats.mjs';

const GATEWAY = 'gw-floor00000';
const sockets = new Map();
let next = 0;
// replies queue per socket and go out corked once per burst of NATS messages
let dirty = [];
const flushOut = () => {
  const list = dirty;
  dirty = [];
  for (const ws of list) {
    const q = ws.getUserData().q;
    if (sockets.has(ws.getUserData().id)) ws.cork(() => q.forEach((m) => ws.send(m, false)));
    q.length = 0;
  }
};
const OK = Buffer.from('ok');
const GONE = Buffer.from('gone');
const nats = connect(process.argv[2], (subject, payload, reply) => {
  // floor.out.<id>, or floor.send.<id> with a reply subject (the send API's request)
  const ws = sockets.get(subject.slice(subject.charCodeAt(6) === 111 ? 10 : 11));
  if (reply) nats.publish(reply, ws ? OK : GONE);
  if (!ws) return;
  const q = ws.getUserData().q;
  if (q.length === 0 && dirty.push(ws) === 1) queueMicrotask(flushOut);
  q.push(payload);
});
await nats.ready;
nats.subscribe('floor.out.>', '', 1);
nats.subscribe('floor.send.>', '', 2);
const app = uWS.App().ws('/*', {
  maxPayloadLength: 1024 * 1024,
  idleTimeout: 0,
  open: (ws) => {
    const id = String(++next);
    // what the wire contract puts on every frame (docs/protocol.md): the four headers, with ids as
    // long as wsgw's (a 13-character gateway id, a 16-character token), and the reply subject
    const head = Buffer.from(`NATS/1.0\r\nWsgw-Conn: ${GATEWAY}.${id.padStart(16, '0')}\r\nWsgw-Gateway: ${GATEWAY}\r\nWsgw-Binary: 0\r\n`);
    Object.assign(ws.getUserData(), { id, in: `floor.in.${id}`, out: `floor.out.${id}`, head, seq: 0, q: [] });
    sockets.set(id, ws);
  },
  message: (ws, message) => {
    const u = ws.getUserData();
    nats.publish(u.in, new Uint8Array(message), u.out, u.head, ++u.seq);
  },
  close: (ws) => sockets.delete(ws.getUserData().id),
});
app.listen('127.0.0.1', 0, (token) => {
  if (!token) process.exit(1);
  process.stdout.write(JSON.stringify({ port: uWS.us_socket_local_port(token) }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
