import t from 'tap';
import { isToken, assertToken, MAX_TOKEN_LENGTH } from '../../src/protocol/tokens.js';
import { formatConnectionId, newToken, parseConnectionId, newGatewayId } from '../../src/protocol/ids.js';
import { createSubjects } from '../../src/protocol/subjects.js';
import { parseControlCommand } from '../../src/protocol/events.js';
import { truncateReason, isApplicationCloseCode } from '../../src/protocol/close-codes.js';

const unsafe = ['', '.', 'a.b', '*', '>', 'a b', 'a\tb', 'a\r\nb', '..', '.a', 'a.', 'a\u00a0b', 'a\u2028b', '$SYS', '_INBOX.x', 'é', 'x'.repeat(MAX_TOKEN_LENGTH + 1), '\ud800'];

/** A printable name for an assertion: raw U+2028 or control characters would break TAP lines. */
const show = (s: string) => JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));

t.test('safe tokens', async (t) => {
  for (const s of ['a', 'A-b_9', 'x'.repeat(MAX_TOKEN_LENGTH)]) t.ok(isToken(s), s);
  for (const s of unsafe) {
    t.notOk(isToken(s), show(s));
    t.throws(() => assertToken('topic', s), { code: 'WSGW_INVALID_TOKEN', message: /^invalid topic: / }, `${show(s)} throws`);
  }
  t.throws(() => assertToken('topic', 42), { message: /expected a string/ });
});

t.test('connection ids', async (t) => {
  const tok = newToken();
  t.match(tok, /^[A-Za-z0-9]{16}$/);
  t.not(newToken(), tok, 'tokens differ');
  const seen = new Set(Array.from({ length: 10_000 }, newToken));
  t.equal(seen.size, 10_000, 'no collisions in 10k tokens');
  t.match(newGatewayId(), /^gw-[A-Za-z0-9]{10}$/);
  t.same(parseConnectionId(formatConnectionId('gw1', 'abc')), { gateway: 'gw1', token: 'abc' });
  for (const bad of ['gw1', 'gw1.', '.abc', 'a.b.c', 'a.*', 'a.>', 'a b.c', 42]) t.throws(() => parseConnectionId(bad), { code: 'WSGW_INVALID_TOKEN' }, String(bad));
});

t.test('subject builders refuse unsafe input', async (t) => {
  const s = createSubjects('wsgw');
  t.equal(s.inMsg('chat'), 'wsgw.in.msg.chat');
  t.equal(s.out('g.c'), 'wsgw.out.g.c');
  t.equal(s.outForGateway('g'), 'wsgw.out.g.*');
  for (const bad of unsafe) {
    t.throws(() => s.inMsg(bad));
    t.throws(() => s.topic(bad));
  }
  t.throws(() => s.out('a.b.c'));
  t.throws(() => createSubjects('a.b'));
});

t.test('control commands', async (t) => {
  t.same(parseControlCommand({ op: 'close' }), { op: 'close', code: undefined, reason: undefined });
  t.same(parseControlCommand({ op: 'subscribe', topic: 'news' }), { op: 'subscribe', topic: 'news' });
  t.throws(() => parseControlCommand({ op: 'close', code: 1006 }), { code: 'WSGW_INVALID_CONTROL' });
  t.throws(() => parseControlCommand({ op: 'close', reason: 5 }), { code: 'WSGW_INVALID_CONTROL' });
  t.throws(() => parseControlCommand({ op: 'subscribe', topic: 'a.b' }), { code: 'WSGW_INVALID_TOKEN' });
  t.throws(() => parseControlCommand({ op: 'explode' }), { message: /unknown control op/ });
  t.throws(() => parseControlCommand('close'), { code: 'WSGW_INVALID_CONTROL' });
  t.equal(Buffer.byteLength(parseControlCommand({ op: 'close', reason: 'é'.repeat(100) }).op === 'close' ? truncateReason('é'.repeat(100)) : ''), 122);
  t.ok(isApplicationCloseCode(1000) && isApplicationCloseCode(4999) && !isApplicationCloseCode(2000) && !isApplicationCloseCode(1001));
});
