// Runs before the suite: makes sure what the integration tests need is on this machine, installing it
// when it can (root with apt), and otherwise stopping at once with the exact command to run.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const major = Number(process.versions.node.split('.')[0]);
if (major < 20) {
  console.error(`wsgw tests need Node.js 20 or newer (this is ${process.version}).`);
  process.exit(1);
}

function findNatsServer() {
  for (const p of [process.env.NATS_SERVER_BIN, '/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) {
    if (p && existsSync(p)) return p;
  }
  const r = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

const INSTALL = 'apt-get update && apt-get install -y nats-server';
if (!findNatsServer()) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status === 0;
  if (isRoot && hasApt) {
    console.error(`nats-server is missing; installing it: ${INSTALL}`);
    try {
      execFileSync('sh', ['-c', `${INSTALL.replace('install -y', 'install -y -qq')} >/dev/null`], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    } catch {
      console.error(`installing nats-server failed; run it yourself: ${INSTALL}`);
      process.exit(1);
    }
  }
  if (!findNatsServer()) {
    console.error(`nats-server is required by the integration tests and was not found.\nInstall it with:\n  sudo ${INSTALL}\n(or set NATS_SERVER_BIN to its path)`);
    process.exit(1);
  }
}

// The workers in other languages (services/go-worker, services/c-worker) are built and run by their
// tests, and the pages are tested in Chromium: install what they need the same way when it is missing.
const TOOLCHAINS = [
  { check: 'command -v go && test -d /usr/share/gocode/src/github.com/nats-io/nats.go', packages: ['golang-go', 'golang-github-nats-io-go-nats-dev'] },
  { check: 'command -v cc && command -v make && command -v pkg-config && pkg-config --exists libnats', packages: ['gcc', 'make', 'pkg-config', 'libnats-dev'] },
  // the TLS tests (NATS with TLS, wss:// listeners) make their certificates with openssl
  { check: 'command -v openssl', packages: ['openssl'] },
  // the browser tests (test/ui) drive Debian's Chromium with playwright-core; never a downloaded browser
  { check: 'test -x "${CHROMIUM_BIN:-/usr/bin/chromium}"', packages: ['chromium'] },
];
const missing = TOOLCHAINS.filter((t) => spawnSync('sh', ['-c', t.check], { stdio: 'ignore' }).status !== 0).flatMap((t) => t.packages);
if (missing.length > 0) {
  const cmd = `apt-get update && apt-get install -y ${missing.join(' ')}`;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status === 0;
  if (isRoot && hasApt) {
    console.error(`what the Go/C worker and browser tests need is missing; installing: ${cmd}`);
    const r = spawnSync('sh', ['-c', `apt-get update -qq && apt-get install -y -qq ${missing.join(' ')} >/dev/null`], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) console.error(`installing failed; those tests will say what is missing. Run: sudo ${cmd}`);
  } else {
    console.error(`the Go/C worker and browser tests need: sudo ${cmd}`);
  }
}
