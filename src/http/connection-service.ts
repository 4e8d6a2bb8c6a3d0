import uWS from 'uWebSockets.js';
import type { us_listen_socket } from 'uWebSockets.js';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { ListenError } from '../errors/errors.js';
import type { ConnectionDirectory } from '../nats/directory.js';
import type { Subjects } from '../protocol/subjects.js';
import { mountConnectionsApi } from './connections-api.js';
import { DirectoryView } from './directory-view.js';
import { errorReply, serve } from './respond.js';
import { purgePolicy, startSweeper } from '../nats/sweeper.js';
import { Metrics } from '../metrics/metrics.js';
import { mountOpsRoutes } from '../metrics/ops-routes.js';
import { mountAdminUi } from './ui.js';
import { createApp, scheme, tlsFiles } from './app.js';

export interface ConnectionServiceOptions {
  readonly config: Config;
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly directory: ConnectionDirectory;
  readonly log: Logger;
}

export interface ConnectionService {
  readonly port: number;
  readonly view: DirectoryView;
  close(): Promise<void>;
}

/** `wsgw connections`: the connections HTTP API on its own port (8004 by default). */
export async function createConnectionService(options: ConnectionServiceOptions): Promise<ConnectionService> {
  const { config, nc, subjects, directory, log } = options;
  const view = await DirectoryView.start(directory, log, config.goneRetention * 1000, { indexed: true });
  // the connection service sweeps dead gateways too, so lost closes happen even when no gateway is left
  const app = createApp(tlsFiles(config));
  const metrics = new Metrics('connections');
  const sweeper = startSweeper({ nc, subjects, directory, log, intervalMs: Math.max(250, Math.floor(config.leaseMs / 3)), purge: purgePolicy(config.goneRetention), onLost: (n) => metrics.lostReported.inc(n) });
  let closing = false;
  mountOpsRoutes(app, metrics, () => (closing ? 'shutting down' : nc.isClosed() ? 'NATS connection closed' : null), () => metrics.connections.set(view.records.size));
  app.get('/healthz', (res) => {
    serve(res, () => ({ status: 200, body: { ok: true, nats: !nc.isClosed(), connections: view.records.size } }), (err) => log.error({ err }, 'healthz failed'));
  });
  const api = mountConnectionsApi(app, { nc, subjects, directory, view, token: config.token, maxPayload: config.maxPayload, requestTimeout: config.requestTimeout, log, metrics });
  const ui = mountAdminUi(app, { view, directory, token: config.token, log });
  app.any('/*', (res, req) => {
    const url = req.getUrl();
    serve(res, () => errorReply(404, 'no_route', `no route ${url}; see GET /connections, /gateways, /healthz, /ui`), () => undefined);
  });
  let listenSocket: us_listen_socket | false = false;
  const port = await new Promise<number>((resolve, reject) => {
    app.listen(config.host, config.port, (token) => {
      if (!token) return reject(new ListenError(config.host, config.port));
      listenSocket = token;
      resolve(uWS.us_socket_local_port(token));
    });
  });
  log.info({ port, auth: config.token !== '', ui: `${scheme(tlsFiles(config), false)}://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${port}/ui` }, 'connection service listening');
  return {
    port,
    view,
    async close() {
      closing = true;
      if (listenSocket) uWS.us_listen_socket_close(listenSocket);
      listenSocket = false;
      await sweeper.close();
      ui.close();
      view.stop();
      api.close();
      app.close();
    },
  };
}
