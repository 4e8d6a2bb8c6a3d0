// The backend for the Pushpin peer row: an echo app speaking Pushpin's WebSocket-over-HTTP protocol
// (each request carries events such as `OPEN\r\n` and `TEXT <hex length>\r\n<payload>\r\n`; the
// response's events go back to the client). OPEN is accepted; TEXT and BINARY are echoed; CLOSE is
// acknowledged. Plain node:http with keep-alive. Prints {"port"} when listening.
import { createServer } from 'node:http';

function parseEvents(body) {
  const events = [];
  let i = 0;
  while (i < body.length) {
    const eol = body.indexOf('\r\n', i);
    if (eol < 0) break;
    const line = body.subarray(i, eol).toString('latin1');
    const sp = line.indexOf(' ');
    const type = sp < 0 ? line : line.slice(0, sp);
    if (sp < 0) {
      events.push({ type, content: null });
      i = eol + 2;
    } else {
      const len = parseInt(line.slice(sp + 1), 16);
      events.push({ type, content: body.subarray(eol + 2, eol + 2 + len) });
      i = eol + 2 + len + 2;
    }
  }
  return events;
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const out = [];
    for (const ev of parseEvents(Buffer.concat(chunks))) {
      if (ev.type === 'OPEN') out.push(Buffer.from('OPEN\r\n'));
      else if ((ev.type === 'TEXT' || ev.type === 'BINARY') && ev.content) out.push(Buffer.from(`${ev.type} ${ev.content.length.toString(16)}\r\n`), ev.content, Buffer.from('\r\n'));
      else if (ev.type === 'CLOSE') out.push(Buffer.from('CLOSE\r\n'));
    }
    res.writeHead(200, { 'Content-Type': 'application/websocket-events' });
    res.end(Buffer.concat(out));
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
process.on('SIGTERM', () => process.exit(0));
