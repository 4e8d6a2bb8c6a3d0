import t from 'tap';
import { readFileSync } from 'node:fs';
import * as wsgw from '../src/index.js';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

t.test('every exported error class is in docs/errors.md with its code, and nothing else is', async (t) => {
  const samples: Array<[string, { code: string }]> = [
    ['ConfigError', new wsgw.ConfigError(['x'])],
    ['InvalidTokenError', new wsgw.InvalidTokenError('topic', 'x')],
    ['InvalidControlError', new wsgw.InvalidControlError('x')],
    ['InvalidMetaError', new wsgw.InvalidMetaError('x')],
    ['HandlerLoadError', new wsgw.HandlerLoadError('x')],
    ['ListenError', new wsgw.ListenError('h', 1)],
    ['DurableStreamError', new wsgw.DurableStreamError('s', 'x')],
    ['HistoryStreamError', new wsgw.HistoryStreamError('s', 'x')],
    ['HistoryOffError', new wsgw.HistoryOffError('x')],
    ['InvalidHistoryQueryError', new wsgw.InvalidHistoryQueryError('x')],
  ];
  const exported = Object.entries(wsgw).filter(([, v]) => typeof v === 'function' && (v as { prototype?: unknown }).prototype instanceof wsgw.WsgwError).map(([k]) => k).sort();
  t.same(exported, samples.map(([n]) => n).sort(), 'the samples cover every exported error class');
  const rows = [...doc.matchAll(/^\| `(WSGW_[A-Z_]+)` \| `(\w+)` \|/gm)].map((m) => [m[2], m[1]]);
  t.same(rows.sort(), samples.map(([n, e]) => [n, e.code]).sort());
  for (const [, e] of samples) t.type(e, wsgw.WsgwError);
});
