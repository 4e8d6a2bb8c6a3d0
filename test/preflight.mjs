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
