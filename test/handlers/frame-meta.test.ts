import t from 'tap';
import { connect, headers, type Msg } from '@nats-io/transport-node';
import { readFrameMeta } from '../../src/handlers/frame-meta.js';
import { FrameHeaderEncoder } from '../../src/gateway/frame-headers.js';
import { encodedHeaders, encodeHeaders } from '../../src/nats/raw-publish.js';
import { startNatsServer } from '../harness/nats-server.js';

const nats = await startNatsServer();
t.teardown(() => nats.stop());

t.test('raw header scan and nats.js headers agree on real messages', async (t) => {
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const got: Msg[] = [];
  const sub = nc.subscribe('x.>', { callback: (_e, m) => got.push(m) });
  const enc = new FrameHeaderEncoder('gw-1.AbCdEfGhIjKlMnOp', 'gw-1');
  nc.publish('x.a', 'one', { headers: encodedHeaders(encodeHeaders(enc.at(7, false))) });
  nc.publish('x.b', new Uint8Array([1, 2]), { headers: encodedHeaders(encodeHeaders(enc.at(123456, true))) });
  /** nats.js headers set in the given order. */
  const hdrs = (...entries: Array<[string, string]>) => {
    const h = headers();
    for (const [k, v] of entries) h.set(k, v);
    return h;
  };
  nc.publish('x.c', 'three', { headers: hdrs(['Other', 'v'], ['Wsgw-Seq', ' 9 '], ['Wsgw-Binary', '0'], ['Wsgw-Gateway', 'gw-2'], ['Wsgw-Conn', 'gw-2.Zz']) });
  nc.publish('x.d', 'four', { headers: hdrs(['Wsgw-Gateway', 'gw-3']) });
  nc.publish('x.e', 'no headers');
  // values the in-place number and flag reads must take as Number() and === '1' do
  nc.publish('x.f', 'five', { headers: hdrs(['Wsgw-Conn', 'gw-4.Yy'], ['Wsgw-Gateway', 'gw-4'], ['Wsgw-Seq', '1e3'], ['Wsgw-Binary', ' 1 ']) });
  nc.publish('x.g', 'six', { headers: hdrs(['Wsgw-Conn', 'gw-4.Xx'], ['Wsgw-Gateway', 'gw-4'], ['Wsgw-Seq', ''], ['Wsgw-Binary', '11']) });
  // a gateway's own block (read by checking its fixed parts) with a seq past 15 digits, and blocks
  // that start like a gateway's but are not one: those go to the general scan and must read the same
  nc.publish('x.h', 'seven', { headers: encodedHeaders(encodeHeaders(enc.at(12345678901234567, false))) });
  nc.publish('x.i', 'eight', { headers: hdrs(['Wsgw-Conn', 'gw-5.Ww'], ['Wsgw-Gateway', 'gw-5'], ['Wsgw-Binary', '0'], ['Wsgw-Seq', '5'], ['Extra', 'x']) });
  const repeated = hdrs(['Wsgw-Conn', 'gw-5.Vv'], ['Wsgw-Gateway', 'gw-5'], ['Wsgw-Binary', '1'], ['Wsgw-Seq', '6']);
  repeated.append('Wsgw-Conn', 'gw-5.Uu');
  nc.publish('x.j', 'nine', { headers: repeated });
  nc.publish('x.k', 'ten', { headers: hdrs(['Wsgw-Conn', ' gw-6.Tt'], ['Wsgw-Gateway', 'gw-6 '], ['Wsgw-Binary', '2'], ['Wsgw-Seq', '8']) });
  nc.publish('x.l', 'eleven', { headers: hdrs(['Wsgw-Conn', 'gw-7.Ss'], ['Wsgw-Gateway', 'gw-7'], ['Wsgw-Binary', '1'], ['Wsgw-Seq', '3']) });
  // a connection with metadata: the gateway's block with Wsgw-Meta after the seq, made at first and changed later
  const withMeta = new FrameHeaderEncoder('gw-8.Mm', 'gw-8', '{"user":"ann"}');
  nc.publish('x.m', 'twelve', { headers: encodedHeaders(encodeHeaders(withMeta.at(1, false))) });
  withMeta.setMeta('{"user":"ann","room":"caf\\u00e9"}');
  nc.publish('x.n', 'thirteen', { headers: encodedHeaders(encodeHeaders(withMeta.at(2, true))) });
  withMeta.setMeta('');
  nc.publish('x.o', 'fourteen', { headers: encodedHeaders(encodeHeaders(withMeta.at(3, false))) });
  // the same from nats.js headers, and metadata followed by another header (the general scan)
  nc.publish('x.p', 'fifteen', { headers: hdrs(['Wsgw-Conn', 'gw-8.Mm'], ['Wsgw-Gateway', 'gw-8'], ['Wsgw-Binary', '0'], ['Wsgw-Seq', '4'], ['Wsgw-Meta', '{"a":"b"}']) });
  nc.publish('x.q', 'sixteen', { headers: hdrs(['Wsgw-Conn', 'gw-8.Mm'], ['Wsgw-Gateway', 'gw-8'], ['Wsgw-Binary', '0'], ['Wsgw-Seq', '5'], ['Wsgw-Meta', ' {"a":"c"} '], ['Extra', 'x']) });
  await nc.flush();
  await sub.drain();
  t.equal(got.length, 17);
  for (const m of got) {
    const viaApi = m.headers
      ? { conn: m.headers.get('Wsgw-Conn'), gateway: m.headers.get('Wsgw-Gateway'), seq: Number(m.headers.get('Wsgw-Seq')), binary: m.headers.get('Wsgw-Binary') === '1', meta: m.headers.get('Wsgw-Meta') }
      : null;
    const expected = viaApi && viaApi.conn !== '' && viaApi.gateway !== '' ? viaApi : null;
    t.same(readFrameMeta(m), expected, `${m.subject}: same answer as the headers API`);
    // the public-API path gives the same (what JetStream messages and other shapes use)
    t.same(readFrameMeta({ headers: m.headers }), expected, `${m.subject}: fallback agrees`);
  }
  t.same(readFrameMeta(got[1]!), { conn: 'gw-1.AbCdEfGhIjKlMnOp', gateway: 'gw-1', seq: 123456, binary: true, meta: '' });
  t.same(readFrameMeta(got[2]!), { conn: 'gw-2.Zz', gateway: 'gw-2', seq: 9, binary: false, meta: '' }, 'order and spacing do not matter');
  t.same(readFrameMeta(got[5]!), { conn: 'gw-4.Yy', gateway: 'gw-4', seq: 1000, binary: true, meta: '' }, 'a seq that is not plain digits reads as Number() reads it');
  t.same(readFrameMeta(got[6]!), { conn: 'gw-4.Xx', gateway: 'gw-4', seq: 0, binary: false, meta: '' }, 'an empty seq is 0; only exactly 1 is binary');
  t.same(readFrameMeta(got[7]!), { conn: 'gw-1.AbCdEfGhIjKlMnOp', gateway: 'gw-1', seq: 12345678901234567, binary: false, meta: '' }, 'a seq past 15 digits');
  t.same(readFrameMeta(got[8]!), { conn: 'gw-5.Ww', gateway: 'gw-5', seq: 5, binary: false, meta: '' }, 'another header after the four');
  t.same(readFrameMeta(got[9]!), { conn: 'gw-5.Vv', gateway: 'gw-5', seq: 6, binary: true, meta: '' }, 'a repeated key: the first value');
  t.same(readFrameMeta(got[10]!), { conn: 'gw-6.Tt', gateway: 'gw-6', seq: 8, binary: false, meta: '' }, 'values trimmed; a flag other than 1 is text');
  t.same(readFrameMeta(got[11]!), { conn: 'gw-7.Ss', gateway: 'gw-7', seq: 3, binary: true, meta: '' }, 'the same order and spacing as a gateway writes, from nats.js headers');
  t.same(readFrameMeta(got[12]!), { conn: 'gw-8.Mm', gateway: 'gw-8', seq: 1, binary: false, meta: '{"user":"ann"}' }, 'the metadata a gateway writes');
  t.same(readFrameMeta(got[13]!), { conn: 'gw-8.Mm', gateway: 'gw-8', seq: 2, binary: true, meta: '{"user":"ann","room":"caf\\u00e9"}' }, 'changed metadata');
  t.same(readFrameMeta(got[14]!), { conn: 'gw-8.Mm', gateway: 'gw-8', seq: 3, binary: false, meta: '' }, 'metadata removed: the block without it');
  t.same(readFrameMeta(got[15]!), { conn: 'gw-8.Mm', gateway: 'gw-8', seq: 4, binary: false, meta: '{"a":"b"}' });
  t.same(readFrameMeta(got[16]!), { conn: 'gw-8.Mm', gateway: 'gw-8', seq: 5, binary: false, meta: '{"a":"c"}' }, 'metadata trimmed, before another header');
  t.equal(JSON.parse(readFrameMeta(got[13]!)!.meta).room, 'café', 'non-ASCII arrives escaped');
  for (const m of [...got.slice(0, 3), ...got.slice(12)]) {
    // the same raw bytes as a plain Uint8Array (no Buffer methods): the JavaScript decoding path
    const raw = m as unknown as { _msg: { hdr: number }; _rdata: Uint8Array };
    t.ok(Buffer.isBuffer(raw._rdata), 'nats.js hands out Buffers (the native path above)');
    const plain = { _msg: { hdr: raw._msg.hdr }, _rdata: Uint8Array.from(raw._rdata) };
    t.same(readFrameMeta(plain as never), readFrameMeta(m), `${m.subject}: plain bytes decode the same`);
  }
});
