// The bridge's floor: floor.in.<id> frames (raw-nats.mjs, queue group) POSTed to the application with
// undici, one request in flight per connection, the answer's body published to floor.out.<id>. No
// retries, no signature, no per-connection state beyond the order queue: the least a bridge can do
// while keeping the contract's request headers (event, connection, gateway, route, binary flag, seq,
// timestamp, content type), which the application parses on every request and which cost about a
// fifth of the throughput measured here next to a version sending three of them.
// Usage: node bridge.mjs <nats-url> <target-url>; prints {"ready":true} once subscribed.
import { Pool } from 'undici';
import { connect } from './raw-nats.mjs';

const target = new URL(process.argv[3]);
const pool = new Pool(target.origin, { connections: 256, pipelining: 1 });
let seq = 0;
const queues = new Map(); // id -> frames waiting while one is in flight

function post(id, body) {
  const chunks = [];
  pool.dispatch(
    {
      path: target.pathname,
      method: 'POST',
      headers: {
        'wsgw-timestamp': String(Date.now()),
        'wsgw-event': 'message',
        'wsgw-conn': id,
        'wsgw-gateway': 'floor',
        'content-type': 'text/plain; charset=utf-8',
        'wsgw-route': 'default',
        'wsgw-binary': '0',
        'wsgw-seq': String(++seq),
      },
      body,
    },
    {
      onRequestStart() {},
      onResponseStart() {},
      onResponseData(_c, chunk) {
        chunks.push(chunk);
      },
      onResponseEnd() {
        if (chunks.length) nats.publish('floor.out.' + id, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
        next(id);
      },
      onResponseError() {
        next(id);
      },
    },
  );
}
function next(id) {
  const q = queues.get(id);
  if (q.length === 0) return void queues.delete(id);
  post(id, q.shift());
}
const nats = connect(process.argv[2], (subject, payload) => {
  const id = subject.slice(9); // floor.in.<id>
  const body = Buffer.from(payload); // our own copy: it may wait in the queue
  const q = queues.get(id);
  if (q) return void q.push(body);
  queues.set(id, []);
  post(id, body);
});
await nats.ready;
nats.subscribe('floor.in.*', 'floor', 1);
nats.flush();
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
