import uWS from 'uWebSockets.js';
import type { us_listen_socket } from 'uWebSockets.js';
import { ListenError } from '../errors/errors.js';
import type { Metrics } from './metrics.js';
import { mountOpsRoutes } from './ops-routes.js';

export interface OpsServer {
  readonly port: number;
  close(): void;
}

/** `/healthz`, `/readyz` and `/metrics` on their own port, for services without an HTTP port (worker, bridge). */
export async function startOpsServer(host: string, port: number, metrics: Metrics, notReady: () => string | null): Promise<OpsServer> {
  const app = uWS.App();
  app.get('/healthz', (res) => {
    res.writeHeader('Content-Type', 'application/json').end('{"ok":true}');
  });
  mountOpsRoutes(app, metrics, notReady);
  let token: us_listen_socket | false = false;
  const bound = await new Promise<number>((resolve, reject) => {
    app.listen(host, port, (t) => {
      if (!t) return reject(new ListenError(host, port));
      token = t;
      resolve(uWS.us_socket_local_port(t));
    });
  });
  return {
    port: bound,
    close() {
      if (token) uWS.us_listen_socket_close(token);
      token = false;
      app.close();
    },
  };
}
