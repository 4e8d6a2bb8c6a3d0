import t from 'tap';
import { readFileSync } from 'node:fs';
import { renderConfigTable } from '../src/config/table.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

t.test('the README config table is the one rendered from the schema', async (t) => {
  const m = /<!-- config-table:start -->\n([\s\S]*?)\n<!-- config-table:end -->/.exec(readme);
  t.ok(m, 'README has the config table markers');
  t.equal(m?.[1], renderConfigTable(), 'regenerate with: npm run docs:config');
});

t.test('the README names the two set-up commands', async (t) => {
  t.match(readme, 'npm ci && npm start');
  t.match(readme, 'npm test');
});
