import t from 'tap';
import { bytesAre, digits, InternedText, latin1, replySubject, subjectTail } from '../../src/nats/message-text.js';

const bytes = (s: string) => Buffer.from(s, 'utf8');

t.test('the text of a byte run, the same string object each time it repeats', async (t) => {
  const texts = new InternedText();
  const a = bytes('wsgw.out.gw-1.AbCdEfGhIjKlMnOp');
  const first = texts.get(a, 14, a.length);
  t.equal(first, 'AbCdEfGhIjKlMnOp');
  t.equal(texts.get(Buffer.from(a), 14, a.length), first, 'equal bytes elsewhere: the kept string');
  t.equal(texts.get(Uint8Array.from(a), 9, 13), 'gw-1', 'a plain Uint8Array (no native slice)');
  t.equal(texts.get(a, 3, 3), '', 'an empty run');
  t.equal(texts.size, 3);
});

t.test('runs whose hashes collide are still told apart byte for byte', async (t) => {
  const texts = new InternedText();
  // 31 * 'A' + 'a' === 31 * 'B' + 'B': 'Aa' and 'BB' share a 31-based hash
  t.equal(texts.get(bytes('Aa'), 0, 2), 'Aa');
  t.equal(texts.get(bytes('BB'), 0, 2), 'BB');
  t.equal(texts.get(bytes('Aa'), 0, 2), 'Aa');
});

t.test('non-ASCII runs are decoded as UTF-8 and not kept; a full table starts over', async (t) => {
  const texts = new InternedText(4);
  t.equal(texts.get(bytes('topic.zdravo-世界'), 6, bytes('topic.zdravo-世界').length), 'zdravo-世界');
  t.equal(texts.size, 0);
  for (const s of ['a', 'b', 'c', 'd']) texts.get(bytes(s), 0, 1);
  t.equal(texts.size, 4);
  t.equal(texts.get(bytes('e'), 0, 1), 'e');
  t.equal(texts.size, 1, 'cleared, then the new one kept');
});

t.test('subjectTail reads nats.js\'s subject bytes, or the public subject of any other message', async (t) => {
  const texts = new InternedText();
  const core = { subject: 'unused', _msg: { subject: bytes('p.out.gw-1.xyz') } };
  t.equal(subjectTail(core, 6, texts), 'gw-1.xyz');
  t.equal(subjectTail({ subject: 'p.out.gw-2.abc' }, 6, texts), 'gw-2.abc');
});

t.test('replySubject reads nats.js\'s reply bytes, or the public reply', async (t) => {
  const noPublic = (raw: unknown) => ({
    _msg: raw,
    get reply(): string {
      throw new Error('the public getter was used');
    },
  });
  t.equal(replySubject(noPublic({ subject: bytes('a') })), '', 'none: no decoding at all');
  t.equal(replySubject(noPublic({ reply: bytes('_INBOX.abc.1') })), '_INBOX.abc.1', 'a Buffer');
  t.equal(replySubject(noPublic({ reply: Uint8Array.from(bytes('_INBOX.x.2')) })), '_INBOX.x.2', 'a plain Uint8Array (FastReader hands these out)');
  t.equal(replySubject({ _msg: { reply: bytes('réponse.1') }, reply: 'réponse.1' }), 'réponse.1', 'non-ASCII: the public getter');
  t.equal(replySubject({ reply: 'js.ack.1' }), 'js.ack.1', 'another message shape');
  t.equal(replySubject({}), '', 'another shape without a reply');
});

t.test('latin1 and digits read bytes in place', async (t) => {
  t.equal(latin1(bytes('xx_INBOX.1yy'), 2, 10), '_INBOX.1');
  t.equal(latin1(Uint8Array.from(bytes('abc')), 0, 3), 'abc', 'a plain Uint8Array');
  t.equal(digits(bytes('HMSG a 1 12 345'), 12, 15), 345);
  for (const bad of ['', 'x1', '1.5', '1234567890123456']) t.equal(digits(bytes(bad), 0, bad.length), -1, JSON.stringify(bad));
});

t.test('bytesAre compares a byte run with expected bytes', async (t) => {
  const b = Buffer.from('NATS/1.0\r\nWsgw-Conn: x');
  const key = Buffer.from('Wsgw-Conn');
  t.ok(bytesAre(b, 10, 19, key));
  t.notOk(bytesAre(b, 10, 18, key), 'a shorter run');
  t.notOk(bytesAre(b, 11, 20, key), 'the same length elsewhere');
  t.notOk(bytesAre(b, -1, 8, key), 'a run starting before the bytes');
  t.ok(bytesAre(b, 3, 3, new Uint8Array(0)), 'the empty run');
});
