import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';

/** A raw TCP WebSocket client that can send frames no library would: for protocol-violation tests. */
export interface RawSocket {
  readonly socket: Socket;
  /** Everything received after the handshake. */
  readonly received: Buffer[];
  /** Resolves when the server closes the TCP connection. */
  readonly ended: Promise<void>;
  /** The close code of the first close frame the server sent, if any. */
  closeCode(): number | null;
}

export async function rawHandshake(port: number, path = '/ws', extraHeaders = ''): Promise<RawSocket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`);
  let head = Buffer.alloc(0);
  const received: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const onData = (b: Buffer) => {
      head = Buffer.concat([head, b]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      if (!head.subarray(0, 12).toString().includes('101')) return reject(new Error(`handshake refused: ${head.toString().split('\r\n')[0]}`));
      if (head.length > end + 4) received.push(head.subarray(end + 4));
      socket.on('data', (d: Buffer) => received.push(d));
      resolve();
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
  const ended = new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.once('end', () => resolve());
  });
  socket.on('error', () => undefined);
  return {
    socket,
    received,
    ended,
    closeCode() {
      const all = Buffer.concat(received);
      // first server frame with opcode 0x8 (close); server frames are unmasked
      for (let i = 0; i + 1 < all.length; ) {
        const op = all[i]! & 0x0f;
        let len = all[i + 1]! & 0x7f;
        let off = i + 2;
        if (len === 126) {
          len = all.readUInt16BE(off);
          off += 2;
        } else if (len === 127) {
          len = Number(all.readBigUInt64BE(off));
          off += 8;
        }
        if (op === 0x8) return len >= 2 ? all.readUInt16BE(off) : 1005;
        i = off + len;
      }
      return null;
    },
  };
}

/** Builds one frame. `mask` false makes an (illegal) unmasked client frame. */
export function frame(opts: { fin?: boolean; rsv?: number; opcode: number; payload: Buffer; mask?: boolean }): Buffer {
  const { fin = true, rsv = 0, opcode, payload, mask = true } = opts;
  const head: number[] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  const len = payload.length;
  if (len < 126) head.push((mask ? 0x80 : 0) | len);
  else if (len < 65536) head.push((mask ? 0x80 : 0) | 126, len >> 8, len & 0xff);
  else throw new Error('test frames stay under 64 KiB');
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([Buffer.from(head), key, masked]);
}
