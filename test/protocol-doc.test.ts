import t from 'tap';
import { readFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { Header } from '../src/protocol/headers.js';
import { CloseCode } from '../src/protocol/close-codes.js';
import { createSubjects, connectionsBucket, gatewaysBucket } from '../src/protocol/subjects.js';
import { startNatsServer } from './harness/nats-server.js';
import { startGateway, uniquePrefix } from './harness/stack.js';
import { TestClient, eventually } from './harness/ws-client.js';

const doc = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8');

/** The JSON code block that follows a `### <name>` heading. */
function exampleAfter(heading: string): Record<string, unknown> {
  const at = doc.indexOf(`### ${heading}`);
  const block = /```json\n([\s\S]*?)```/.exec(doc.slice(at));
  if (at < 0 || !block) throw new Error(`no JSON example under ### ${heading}`);
  return JSON.parse(block[1]!) as Record<string, unknown>;
}

t.test('every header name in the code is documented and every documented one exists', async (t) => {
  const inCode = Object.values(Header).sort();
  const inDoc = [...new Set(doc.match(/Wsgw-[A-Za-z]+/g))].sort();
  t.same(inDoc, inCode);
});

t.test('the subject table matches the subject builders', async (t) => {
  const s = createSubjects('P');
  const expected = [s.inOpen, s.inMsg('ROUTE').replace('ROUTE', '<route>'), s.inClose, s.out('G.C').replace('G.C', '<connId>'), s.ctl('G.C').replace('G.C', '<connId>'), s.topic('TOPIC').replace('TOPIC', '<topic>'), s.auth];
  const rows = [...doc.matchAll(/^\| `(P\.[^`]+)` \|/gm)].map((m) => m[1]);
  t.same(rows, expected);
  t.match(doc, s.outForGateway('GW').replace('GW', '<gatewayId>'));
  t.match(doc, s.ctlForGateway('GW').replace('GW', '<gatewayId>'));
  t.match(doc, `\`${connectionsBucket('P')}\``);
  t.match(doc, `\`${gatewaysBucket('P')}\``);
});

t.test('the close code table matches the CloseCode enum where documented', async (t) => {
  const rows = new Map([...doc.matchAll(/^\| (\d{4}) \| (\w+) \|/gm)].map((m) => [m[2]!, Number(m[1])]));
  for (const [name, code] of rows) t.equal((CloseCode as Record<string, number>)[name], code, `${name} = ${code}`);
  for (const [name, code] of Object.entries(CloseCode)) {
    if (code >= 4000 || [1000, 1001, 1008, 1009, 1011, 1013].includes(code)) t.equal(rows.get(name), code, `${name} is in the table`);
  }
});

t.test('the JSON examples have exactly the fields real events have', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix();
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const events: Record<string, Record<string, unknown>> = {};
  nc.subscribe(`${prefix}.in.>`, { callback: (_e, m) => (events[m.subject.split('.')[2]!] = m.json()) });
  await nc.flush();
  const g = await startGateway({ natsUrl: nats.url, prefix });
  t.teardown(() => g.close());
  const c = await TestClient.connect(g.url + '?a=1');
  await eventually(() => events.open, 5_000, 'open event');
  await c.close();
  await eventually(() => events.close, 5_000, 'close event');
  t.same(Object.keys(exampleAfter('OpenEvent')).sort(), Object.keys(events.open!).sort(), 'OpenEvent fields');
  t.same(Object.keys(exampleAfter('CloseEvent')).sort(), Object.keys(events.close!).sort(), 'CloseEvent fields');
});
