#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm ci` through the prepare script, or `npm run build`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('wsgw: dist/ is missing; run `npm run build` (npm ci builds it too)\n');
  process.exit(2);
}
const { main } = await import(entry.href);
await main();
