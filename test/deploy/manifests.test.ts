import t from 'tap';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { envName, keysFor, schema, type Command, type Config, type ConfigKey } from '../../src/config/schema.js';
import { natsServerBinary } from '../harness/nats-server.js';

// deploy/compose and deploy/k8s cannot be run here (no Docker engine, no Kubernetes): this test keeps
// them consistent with the code instead. Every wsgw command line and WSGW_* variable must be one the
// command accepts and the whole configuration must load; ports, probes, Services and users must agree.

const root = new URL('../../', import.meta.url).pathname;
const read = (p: string) => readFileSync(join(root, p), 'utf8');
const users = read('deploy/nats/accounts-users.conf');
const COMMANDS = new Set<Command>(['local', 'gateway', 'worker', 'connections', 'bridge', 'exec']);
const byFlag = new Map((Object.keys(schema) as ConfigKey[]).flatMap((k) => [[schema[k].flag, k] as const, ...(schema[k].short ? [[schema[k].short!, k] as const] : [])]));

/** A wsgw argv (after `wsgw`): its command and flags, refusing any flag the schema does not know. */
function wsgwArgs(args: readonly string[], where: string): { command: Command; flags: Record<string, unknown> } {
  const [command, ...rest] = args;
  if (!COMMANDS.has(command as Command)) throw new Error(`${where}: ${command} is not a wsgw command`);
  const flags: Record<string, unknown> = {};
  for (let i = 0; i < rest.length; i++) {
    const key = byFlag.get(rest[i]!);
    if (!key) throw new Error(`${where}: unknown flag ${rest[i]}`);
    if (!keysFor(command as Command).includes(key)) throw new Error(`${where}: ${rest[i]} is not an option of wsgw ${command}`);
    flags[key] = schema[key].type === 'boolean' ? true : rest[++i];
  }
  return { command: command as Command, flags };
}

/** Loads the configuration a service would start with; WSGW_* names must belong to the command. */
function load(where: string, args: readonly string[], env: Record<string, string>): { command: Command; config: Config } {
  const { command, flags } = wsgwArgs(args, where);
  for (const name of Object.keys(env).filter((n) => n.startsWith('WSGW_'))) {
    if (!keysFor(command).some((k) => envName(k) === name)) throw new Error(`${where}: ${name} is not an option of wsgw ${command}`);
  }
  return { command, config: loadConfig({ command, flags: flags as Record<ConfigKey, unknown>, env }) };
}

const hasUser = (user: string | undefined) => !!user && new RegExp(`user: ${user},`).test(users);

t.test('Dockerfile: multi-stage, Node 20 on glibc, non-root, runs bin/wsgw.js with a valid default command', async (t) => {
  const text = read('deploy/compose/Dockerfile');
  const froms = [...text.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!);
  t.ok(froms.length >= 2, 'multi-stage');
  t.match(froms.at(-1), /^node:20-(bookworm|bullseye)/, 'the runtime stage is Node 20 on Debian (uWebSockets.js ships glibc binaries)');
  const user = /^USER\s+(\S+)/m.exec(text)?.[1];
  t.ok(user && user !== 'root' && user !== '0', `runs as ${user}, not root`);
  t.same(JSON.parse(/^ENTRYPOINT\s+(.*)$/m.exec(text)![1]!), ['node', 'bin/wsgw.js']);
  t.ok(existsSync(join(root, 'bin/wsgw.js')));
  const cmd = JSON.parse(/^CMD\s+(.*)$/m.exec(text)![1]!) as string[];
  t.doesNotThrow(() => load('Dockerfile CMD', cmd, {}), `default command: wsgw ${cmd.join(' ')}`);
  for (const m of text.matchAll(/^COPY\s+(?!--from)(.+)\s+\S+$/gm)) {
    for (const src of m[1]!.trim().split(/\s+/)) t.ok(existsSync(join(root, src)), `COPY source ${src} exists`);
  }
  const exposed = new Set(/^EXPOSE\s+(.*)$/m.exec(text)![1]!.split(/\s+/).map(Number));
  t.ok(exposed.has(8000) && exposed.has(8004) && exposed.has(9464), 'exposes the gateway, API and metrics ports');
});

t.test('compose: every wsgw service starts with flags and variables its command accepts; users, ports and files agree', async (t) => {
  const dir = join(root, 'deploy/compose');
  const compose = parse(readFileSync(join(dir, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, any> };
  // ${VAR:?...} and ${VAR} resolved from env.example
  const example = Object.fromEntries([...read('deploy/compose/env.example').matchAll(/^([A-Z_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
  const subst = (v: unknown) => String(v).replace(/\$\{([A-Z_]+)(?::\?[^}]*)?\}/g, (_, name: string) => {
    if (!(name in example)) throw new Error(`compose uses \${${name}} but env.example does not set it`);
    return example[name]!;
  });
  const wsgwServices = Object.entries(compose.services).filter(([, s]) => s.image === 'wsgw:latest');
  t.same(wsgwServices.map(([n]) => n).sort(), ['bridge', 'connections', 'gateway', 'worker']);
  const loaded: Record<string, { command: Command; config: Config }> = {};
  for (const [name, s] of wsgwServices) {
    const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, subst(v)]));
    t.doesNotThrow(() => (loaded[name] = load(`compose ${name}`, s.command, env)), `${name}: wsgw ${s.command.join(' ')}`);
    t.ok(hasUser(env.WSGW_NATS_USER), `${name}: NATS user ${env.WSGW_NATS_USER} exists in accounts-users.conf`);
    t.same(loaded[name]!.config.nats, ['nats://nats-1:4222', 'nats://nats-2:4222', 'nats://nats-3:4222'], `${name}: all three NATS nodes`);
  }
  t.equal(loaded.gateway!.config.port, 8000);
  t.same(compose.services.gateway.expose, ['8000']);
  t.match(compose.services.gateway.healthcheck.test.join(' '), /127\.0\.0\.1:8000\/readyz/, 'healthcheck on /readyz of the gateway port');
  t.ok(loaded.gateway!.config.maxConnections < compose.services.gateway.ulimits.nofile.soft, 'max connections below the descriptor limit');
  t.ok(loaded.gateway!.config.drainMs < Number(/^(\d+)s$/.exec(compose.services.gateway.stop_grace_period)![1]) * 1000, 'the drain fits the stop grace period');
  t.equal(loaded.gateway!.config.kvReplicas, 3, 'KV replicated over the three nodes');
  t.match(read('deploy/compose/nginx.conf'), /server gateway:8000/, 'the load balancer points at the gateway port');
  t.same(compose.services.lb.ports, ['8000:8000']);
  t.same(compose.services.connections.ports, [`${loaded.connections!.config.port}:${loaded.connections!.config.port}`], 'connection service port published as configured');
  t.equal(loaded.bridge!.config.target, `http://app:${compose.services.app.environment.PORT}/events`, 'the bridge targets the app service port');
  t.ok(existsSync(join(root, loaded.worker!.config.handler)), 'the worker handler is in the image (services/examples)');
  t.notSame(compose.services.worker.profiles, compose.services.bridge.profiles, 'worker and bridge are alternatives, never both on one prefix');
  for (const s of Object.values(compose.services)) {
    for (const v of (s.volumes ?? []) as string[]) {
      const src = v.split(':')[0]!;
      if (src.startsWith('.')) t.ok(existsSync(resolve(dir, src)), `volume source ${src} exists`);
    }
  }
});

t.test('compose: its nats-server config passes nats-server -t with the users file next to it', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'wsgw-compose-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  copyFileSync(join(root, 'deploy/compose/nats.conf'), join(tmp, 'nats.conf'));
  copyFileSync(join(root, 'deploy/nats/accounts-users.conf'), join(tmp, 'accounts-users.conf'));
  const env = { ...process.env, NATS_NAME: 'nats-1', WSGW_GATEWAY_PASSWORD: 'a', WSGW_WORKER_PASSWORD: 'b', WSGW_BRIDGE_PASSWORD: 'c', WSGW_CONNECTIONS_PASSWORD: 'd' };
  t.doesNotThrow(() => execFileSync(natsServerBinary(), ['-t', '-c', join(tmp, 'nats.conf')], { env, stdio: 'pipe' }));
  const { NATS_NAME: _n, ...withoutName } = env;
  t.throws(() => execFileSync(natsServerBinary(), ['-t', '-c', join(tmp, 'nats.conf')], { env: withoutName, stdio: 'pipe' }), 'and fails without its variables');
});

t.test('supercluster sketch: both regions pass nats-server -t', async (t) => {
  const dir = join(root, 'deploy/nats/supercluster');
  const files = readdirSync(dir).filter((f) => f.endsWith('.conf'));
  t.ok(files.length >= 2);
  for (const f of files) t.doesNotThrow(() => execFileSync(natsServerBinary(), ['-t', '-c', join(dir, f)], { stdio: 'pipe' }), f);
});

t.test('k8s: Deployments run valid wsgw commands; ports, probes, Services, PDBs, Secrets and users agree', async (t) => {
  const dir = join(root, 'deploy/k8s');
  const docs = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') && f !== 'nats-values.yaml')
    .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => ({ file: f, doc: d.toJS() as any })));
  const secrets = new Map(docs.filter((d) => d.doc.kind === 'Secret').map((d) => [d.doc.metadata.name, Object.keys(d.doc.stringData)]));
  const deployments = docs.filter((d) => d.doc.kind === 'Deployment');
  t.same(deployments.map((d) => d.doc.metadata.name).sort(), ['wsgw-bridge', 'wsgw-connections', 'wsgw-gateway', 'wsgw-worker']);
  const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

  for (const { file, doc } of deployments) {
    const pod = doc.spec.template.spec;
    const [c] = pod.containers;
    t.ok(matches(doc.spec.selector.matchLabels, doc.spec.template.metadata.labels), `${file}: selector matches its pods`);
    const env: Record<string, string> = {};
    for (const e of c.env ?? []) {
      if (e.valueFrom?.secretKeyRef) {
        const { name, key } = e.valueFrom.secretKeyRef;
        t.ok(secrets.get(name)?.includes(key), `${file}: ${e.name} reads Secret ${name}/${key}, which secrets.example.yaml defines`);
        env[e.name] = 'secret';
      } else if (e.valueFrom?.fieldRef) env[e.name] = 'wsgw-gateway-5d9c7-abcde';
      else env[e.name] = e.value;
    }
    let loaded: { command: Command; config: Config } | undefined;
    t.doesNotThrow(() => (loaded = load(file, c.args, env)), `${file}: wsgw ${c.args.join(' ')}`);
    if (!loaded) continue;
    const { command, config } = loaded;
    t.ok(hasUser(env.WSGW_NATS_USER), `${file}: NATS user ${env.WSGW_NATS_USER} exists in accounts-users.conf`);
    t.ok(pod.securityContext?.runAsNonRoot, `${file}: non-root`);
    const ports = new Map<string, number>(c.ports.map((p: any) => [p.name, p.containerPort]));
    const served = command === 'gateway' || command === 'connections' ? config.port : config.metricsPort;
    t.ok(served > 0 && [...ports.values()].includes(served), `${file}: containerPort ${served} is the port wsgw ${command} serves /readyz on`);
    t.equal(c.readinessProbe.httpGet.path, '/readyz', `${file}: readiness on /readyz`);
    t.equal(ports.get(c.readinessProbe.httpGet.port), served, `${file}: readiness probe on the served port`);
    if (c.livenessProbe) t.equal(c.livenessProbe.httpGet.path, '/healthz');
    const pdbs = docs.filter((d) => d.doc.kind === 'PodDisruptionBudget' && matches(d.doc.spec.selector.matchLabels, doc.spec.template.metadata.labels));
    t.equal(pdbs.length, 1, `${file}: one PodDisruptionBudget`);
    for (const svc of docs.filter((d) => d.doc.kind === 'Service' && matches(d.doc.spec.selector, doc.spec.template.metadata.labels))) {
      for (const p of svc.doc.spec.ports) t.ok(ports.has(p.targetPort), `${file}: Service ${svc.doc.metadata.name} targets port ${p.targetPort}, which the pod names`);
    }
    if (command === 'gateway') {
      const preStop = Number(c.lifecycle.preStop.exec.command.at(-1));
      t.ok((preStop + 2) * 1000 + config.drainMs <= pod.terminationGracePeriodSeconds * 1000, `${file}: preStop ${preStop}s + drain ${config.drainMs} ms fit the ${pod.terminationGracePeriodSeconds}s grace period`);
      t.ok(config.maxConnections < 20_000, `${file}: --max-connections below a process's descriptor limit`);
      t.equal(config.kvReplicas, 3, `${file}: KV replicated on the three NATS nodes`);
      t.equal(doc.spec.strategy.rollingUpdate.maxUnavailable, 0, `${file}: rolling updates never drop capacity`);
      t.equal(env.WSGW_ID !== undefined, true, `${file}: the pod name is the gateway id`);
    }
    if (command === 'worker') t.ok(existsSync(join(root, config.handler)), `${file}: handler ${config.handler} is in the image`);
  }
});

t.test('k8s: NATS Helm values give three JetStream nodes with the shared users file and the Secrets it needs', async (t) => {
  const values = parse(read('deploy/k8s/nats-values.yaml')) as any;
  t.equal(values.config.cluster.enabled, true);
  t.equal(values.config.cluster.replicas, 3, 'three replicas (KV buckets with --kv-replicas 3)');
  t.equal(values.config.jetstream.enabled, true);
  t.equal(values.config.jetstream.fileStore.enabled, true, 'JetStream on persistent volumes');
  t.equal(values.config.merge.$include, 'accounts-users.conf', 'includes deploy/nats/accounts-users.conf');
  t.ok(values.config.merge.max_payload >= 1024 * 1024, 'max payload fits the default frame limit');
  const secretKeys = parseAllDocuments(read('deploy/k8s/secrets.example.yaml')).map((d) => d.toJS() as any);
  for (const name of users.match(/\$WSGW_[A-Z_]+_PASSWORD/g)!.map((v) => v.slice(1))) {
    const ref = values.container.env[name]?.valueFrom?.secretKeyRef;
    t.ok(ref && secretKeys.some((s) => s.metadata.name === ref.name && ref.key in s.stringData), `${name} (used by accounts-users.conf) comes from a Secret`);
  }
  t.ok(existsSync(join(root, 'deploy/nats', values.config.merge.$include)));
  t.equal(dirname(values.container.patch[0].value.mountPath), '/etc/nats-config', 'mounted next to the chart’s nats.conf');
});
