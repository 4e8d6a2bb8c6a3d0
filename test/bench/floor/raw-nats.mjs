// The floor's NATS client: the protocol written by hand on a net socket, no library. Publishes may
// carry a header block (HPUB); MSG and HMSG handlers get (subject, payload, reply), the payload
// without the headers. Writes are gathered into one buffer and written once per event-loop turn;
// MSG lines are parsed in place from the socket's chunks. Only what the floor needs: CONNECT, SUB,
// PUB, HPUB, MSG, HMSG, PING/PONG.
import net from 'node:net';

export function connect(url, onMsg) {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  socket.setNoDelay(true);
  // one slab: PUB lines and payloads are copied in once; each turn writes the new part of it
  let slab = Buffer.allocUnsafe(1 << 20);
  let start = 0;
  let pos = 0;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pos === start) return;
    socket.write(slab.subarray(start, pos));
    start = pos;
    if (pos > slab.length >> 1) [slab, start, pos] = [Buffer.allocUnsafe(slab.length), 0, 0];
  };
  const room = (n) => {
    if (pos + n <= slab.length) return;
    flush();
    if (n > slab.length - pos) [slab, start, pos] = [Buffer.allocUnsafe(Math.max(slab.length, n * 2)), 0, 0];
  };
  const later = () => {
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  const write = (buf) => {
    room(buf.length);
    pos += buf.copy(slab, pos);
    later();
  };
  let pending = null; // unparsed bytes from earlier chunks
  socket.on('data', (chunk) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = null;
    let pos = 0;
    while (pos < buf.length) {
      const eol = buf.indexOf(13, pos);
      if (eol < 0 || eol + 1 >= buf.length) break;
      const op = buf[pos];
      if (op === 77 /* M */ || op === 72 /* H */) {
        // MSG <subject> <sid> [reply] <size>, or HMSG <subject> <sid> [reply] <header size> <size>
        const h = op === 72 ? 1 : 0;
        const args = buf.latin1Slice(pos + 4 + h, eol).split(' ');
        const size = Number(args[args.length - 1]);
        const start = eol + 2;
        if (start + size + 2 > buf.length) break;
        const skip = h ? Number(args[args.length - 2]) : 0;
        onMsg(args[0], buf.subarray(start + skip, start + size), args.length === 4 + h ? args[2] : undefined);
        pos = start + size + 2;
      } else {
        if (op === 80 && buf[pos + 1] === 73 /* PI(NG) */) write(Buffer.from('PONG\r\n'));
        else if (op === 45 /* -ERR */) console.error(buf.latin1Slice(pos, eol));
        pos = eol + 2;
      }
    }
    if (pos < buf.length) pending = Buffer.from(buf.subarray(pos));
  });
  const ready = new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('data', () => resolve());
  });
  socket.write('CONNECT {"verbose":false,"pedantic":false,"protocol":1,"headers":true}\r\n');
  return {
    ready,
    subscribe(subject, queue, sid) {
      write(Buffer.from(`SUB ${subject}${queue ? ' ' + queue : ''} ${sid}\r\n`));
    },
    /**
     * payload: a Buffer or Uint8Array; copied at once (the caller may reuse its memory). With `head`
     * (a header block's lines, from `NATS/1.0` on), the message is an HPUB whose headers are `head`
     * and a `Wsgw-Seq: <seq>` line.
     */
    publish(subject, payload, reply, head, seq) {
      const tail = head ? `Wsgw-Seq: ${seq}\r\n\r\n` : '';
      const hlen = head ? head.length + tail.length : 0;
      room(subject.length + (reply?.length ?? 0) + hlen + payload.length + 40);
      const to = reply ? `${subject} ${reply}` : subject;
      pos += slab.latin1Write(head ? `HPUB ${to} ${hlen} ${hlen + payload.length}\r\n` : `PUB ${to} ${payload.length}\r\n`, pos);
      if (head) {
        slab.set(head, pos);
        pos += head.length;
        pos += slab.latin1Write(tail, pos);
      }
      slab.set(payload, pos);
      pos += payload.length;
      slab[pos++] = 13;
      slab[pos++] = 10;
      later();
    },
    flush,
    close: () => socket.destroy(),
  };
}
