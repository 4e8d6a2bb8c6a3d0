import { readFileSync, writeFileSync } from 'node:fs';
import { renderConfigTable } from './table.js';

const START = '<!-- config-table:start -->\n';
const END = '\n<!-- config-table:end -->';

/** Rewrites the config table between the README's markers (`npm run docs:config`). */
export function updateReadmeTable(path: string): boolean {
  const text = readFileSync(path, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${path} has no config-table markers`);
  const next = text.slice(0, a + START.length) + renderConfigTable() + text.slice(b);
  if (next === text) return false;
  writeFileSync(path, next);
  return true;
}
