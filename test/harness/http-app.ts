import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';

export interface AppRequest {
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
  readonly event: string;
  readonly conn: string;
}

export type AppHandler = (req: AppRequest, res: ServerResponse) => void | Promise<void>;

/** A real HTTP application for the bridge to call; each test scripts its answers. */
export interface TestApp {
  readonly url: string;
  readonly port: number;
  readonly requests: AppRequest[];
  handler: AppHandler;
  /** Stops listening and drops open sockets (the application is down). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

export async function startTestApp(handler: AppHandler): Promise<TestApp> {
  let server: Server;
  let port = 0;
  const app: TestApp = {
    url: '',
    port: 0,
    requests: [],
    handler,
    async stop() {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
    async start() {
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const r: AppRequest = { headers: req.headers, body: Buffer.concat(chunks), event: String(req.headers['wsgw-event']), conn: String(req.headers['wsgw-conn']) };
          app.requests.push(r);
          Promise.resolve(app.handler(r, res)).catch(() => {
            res.statusCode = 500;
            res.end();
          });
        });
      });
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
      port = (server.address() as { port: number }).port;
      Object.assign(app, { port, url: `http://127.0.0.1:${port}/events` });
    },
  };
  await app.start();
  return app;
}
