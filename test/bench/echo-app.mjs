// The HTTP echo application for the bridge (and the peer) benchmarks: answers every message event with
// its body, everything else with 204. node:http with keep-alive, as a typical small app would be.
import { createServer } from 'node:http';

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.headers['wsgw-event'] !== 'message') return void res.writeHead(204).end();
    res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'text/plain' }).end(Buffer.concat(chunks));
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
process.on('SIGTERM', () => process.exit(0));
