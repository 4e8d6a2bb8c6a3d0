import t from 'tap';
// @ts-expect-error: a plain .mjs bench script without types
import { callTree, flameSvg } from './flame.mjs';

const frame = (id: number, functionName: string, url: string, children: number[] = []) => ({ id, callFrame: { functionName, url, lineNumber: 9, columnNumber: 0, scriptId: '0' }, children });

// (root) -> main -> {a, a' (the same function again), b}; (idle) beside main
const profile = {
  nodes: [
    frame(1, '(root)', '', [2, 6]),
    frame(2, 'main', 'file:///x/dist/main.js', [3, 4, 5]),
    frame(3, 'a', 'file:///x/node_modules/dep/a.js'),
    frame(4, 'a', 'file:///x/node_modules/dep/a.js'),
    frame(5, 'b<c>&"d"', 'node:internal/b'),
    frame(6, '(idle)', ''),
  ],
  samples: [2, 3, 4, 4, 5, 6, 6, 6],
  timeDeltas: [100, 200, 300, 300, 50, 1000, 1000, 1000],
  startTime: 0,
  endTime: 5000,
};

t.test('the call tree: idle left out, the same function under one parent merged, totals inclusive', async (t) => {
  const root = callTree(profile);
  t.equal(root.total, 100 + 200 + 600 + 50, 'busy time only');
  const main = root.children.get('main dist/main.js:10');
  t.ok(main, 'own code named by its dist path and 1-based line');
  t.equal(main.self, 100);
  t.equal(main.total, 950);
  const a = main.children.get('a node_modules/dep/a.js:10');
  t.equal(a.total, 800, 'two frames of a merged');
  t.equal(a.kind, 'dependency');
  t.equal(main.children.size, 2);
});

t.test('the SVG: a box per frame wide enough, escaped names, a title', async (t) => {
  const svg: string = flameSvg(callTree(profile), 'a <title>');
  t.match(svg, /^<svg /);
  t.match(svg, /a &lt;title&gt;/, 'title escaped');
  t.match(svg, /b&lt;c&gt;&amp;&quot;d&quot;/, 'names escaped');
  t.equal(svg.match(/<rect /g)!.length, 4 + 4, 'all, main, a, b, and the four legend swatches');
  t.match(svg, /a node_modules\/dep\/a.js:10: 0.8 ms, 84.2% of busy time/);
});
