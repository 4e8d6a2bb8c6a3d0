import t from 'tap';
import { gatewaysOfSubjects } from '../../src/nats/directory.js';

const prefix = '$KV.wsgw_connections.';
const page = (subjects: Record<string, number>, extra = '') =>
  `{"type":"io.nats.jetstream.api.v1.stream_info_response","total":5,"offset":0,"limit":100000,"config":{"name":"KV_wsgw_connections","subjects":["$KV.wsgw_connections.>"]},"state":{"messages":5,"subjects":${JSON.stringify(subjects)}}${extra}}`;

t.test('a stream info page: each subject counted, each gateway once, the total read from the answer', async (t) => {
  const into = new Set<string>(['gw-known']);
  const r = gatewaysOfSubjects(page({ [`${prefix}gw-a.t1`]: 1, [`${prefix}gw-a.t2`]: 1, [`${prefix}gw-b.t3`]: 1, [`${prefix}gw-known.t4`]: 1 }, ',"cluster":{"leader":"n1"}'), prefix, into);
  t.same(r, { count: 4, total: 5 });
  t.same([...into].sort(), ['gw-a', 'gw-b', 'gw-known'], 'added to what the set held, no duplicates');
});

t.test('a stream with no subjects in it', async (t) => {
  const into = new Set<string>();
  t.same(gatewaysOfSubjects('{"type":"io.nats.jetstream.api.v1.stream_info_response","config":{"subjects":["$KV.x.>"]},"state":{"messages":0}}', prefix, into), { count: 0, total: 0 });
  t.equal(into.size, 0);
});

t.test('an API error is thrown with its description, not read as an empty page', async (t) => {
  t.throws(() => gatewaysOfSubjects('{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}', prefix, new Set()), /stream not found \(404\)/);
});
