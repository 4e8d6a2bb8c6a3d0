// A flame graph (SVG) of a V8 CPU profile (`node --cpu-prof`): each box a function in a call path, as
// wide as the time spent in it and everything it called; idle time left out, so the full width is the
// process's busy time. Frames of the same function under the same parent are merged.
// Usage: node test/bench/flame.mjs <in.cpuprofile> [out.svg] [title]  (default: the input with .svg; its path)
import { readFileSync, writeFileSync } from 'node:fs';

const WIDTH = 1200;
const ROW = 17;
const MIN_PX = 1;
/** Rows drawn at most: module loading at start-up nests a hundred deep and says nothing here. */
const MAX_DEPTH = 40;

/** The profile as a merged call tree with inclusive times (µs); `(idle)` dropped. */
export function callTree(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0));
  const merge = (node, into) => {
    const cf = node.callFrame;
    if (cf.functionName === '(idle)') return;
    const file = cf.url ? cf.url.replace(/^.*\/(node_modules\/)/, '$1').replace(/^file:\/\/.*?\/(dist|test)\//, '$1/') : '';
    const name = `${cf.functionName || '(anonymous)'}${file ? ` ${file}:${cf.lineNumber + 1}` : ''}`;
    let child = into.children.get(name);
    if (!child) into.children.set(name, (child = { name, kind: kindOf(cf), self: 0, total: 0, children: new Map() }));
    child.self += self.get(node.id) ?? 0;
    for (const c of node.children ?? []) merge(byId.get(c), child);
  };
  const root = { name: 'all', kind: 'root', self: 0, total: 0, children: new Map() };
  const top = profile.nodes.find((n) => n.callFrame.functionName === '(root)') ?? profile.nodes[0];
  for (const c of top.children ?? []) merge(byId.get(c), root);
  const sum = (n) => (n.total = n.self + [...n.children.values()].reduce((a, c) => a + sum(c), 0));
  sum(root);
  return root;
}

function kindOf(cf) {
  if (!cf.url) return 'native';
  if (cf.url.includes('/node_modules/')) return 'dependency';
  if (cf.url.startsWith('node:')) return 'node';
  return 'own';
}

const COLOURS = { own: ['#f4a259', '#e9854a'], dependency: ['#7fb2e5', '#6aa0d8'], node: ['#bdbdbd', '#a9a9a9'], native: ['#e76f6f', '#d95f5f'], root: ['#888', '#888'] };
const esc = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The SVG text for a call tree from `callTree`. */
export function flameSvg(root, title) {
  const boxes = [];
  let depth = 0;
  const place = (n, x, d) => {
    const w = (n.total / root.total) * WIDTH;
    if (w < MIN_PX || d > MAX_DEPTH) return;
    depth = Math.max(depth, d);
    boxes.push({ n, x, w, d });
    let cx = x;
    for (const c of [...n.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      place(c, cx, d + 1);
      cx += (c.total / root.total) * WIDTH;
    }
  };
  place(root, 0, 0);
  const top = 40;
  const height = top + (depth + 1) * ROW + 24;
  const y = (d) => top + (depth - d) * ROW;
  const rects = boxes.map(({ n, x, w, d }, i) => {
    const pct = ((100 * n.total) / root.total).toFixed(1);
    const label = w > 30 ? esc(n.name.slice(0, Math.floor((w - 6) / 6.5))) : '';
    const fill = COLOURS[n.kind][i % 2];
    return `<g><title>${esc(n.name)}: ${(n.total / 1000).toFixed(1)} ms, ${pct}% of busy time (self ${(n.self / 1000).toFixed(1)} ms)</title><rect x="${x.toFixed(1)}" y="${y(d)}" width="${w.toFixed(1)}" height="${ROW - 1}" fill="${fill}"/>${label ? `<text x="${(x + 3).toFixed(1)}" y="${y(d) + 12}">${label}</text>` : ''}</g>`;
  });
  const legend = [['own', 'wsgw'], ['dependency', 'dependencies'], ['node', 'Node.js'], ['native', 'native, GC']]
    .map(([k, t], i) => `<rect x="${10 + i * 130}" y="${height - 18}" width="12" height="12" fill="${COLOURS[k][0]}"/><text x="${26 + i * 130}" y="${height - 8}">${t}</text>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="monospace" font-size="11">
<text x="10" y="18" font-size="14">${esc(title)}</text><text x="10" y="33" fill="#555">busy ${(root.total / 1000).toFixed(0)} ms; width = time in a function and what it called; hover a box for its figures</text>
${rects.join('\n')}
${legend}
</svg>
`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [input, out, title] = process.argv.slice(2);
  if (!input) {
    process.stderr.write('usage: node test/bench/flame.mjs <in.cpuprofile> [out.svg] [title]\n');
    process.exit(2);
  }
  const root = callTree(JSON.parse(readFileSync(input, 'utf8')));
  const output = out ?? input.replace(/\.cpuprofile$/, '') + '.svg';
  writeFileSync(output, flameSvg(root, title ?? input.split('/').slice(-3).join('/')));
  process.stdout.write(`${output}\n`);
}
