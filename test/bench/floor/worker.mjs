// The floor's worker: echoes every floor.in.<id> frame to its reply subject (floor.out.<id>) through raw-nats.mjs.
// Usage: node worker.mjs <nats-url>; prints {"ready":true} once subscribed.
import { connect } from './raw-nats.mjs';

// the reply subject, as a wsgw worker answers (floor.out.<id> for a frame that has none)
const nats = connect(process.argv[2], (subject, payload, reply) => nats.publish(reply ?? 'floor.out.' + subject.slice(9), payload));
await nats.ready;
nats.subscribe('floor.in.*', 'floor', 1);
nats.flush();
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
process.on('SIGTERM', () => process.exit(0));
