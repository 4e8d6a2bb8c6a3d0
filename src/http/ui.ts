import { readFileSync } from 'node:fs';
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Logger } from 'pino';
import type { ConnectionRecord } from '../protocol/events.js';
import type { ConnectionDirectory } from '../nats/directory.js';
import type { DirectoryView } from './directory-view.js';
import { bearerMatches, serve, UNAUTHORIZED } from './respond.js';

/** The pages under `ui/` at the package root (next to `dist/` and `src/`). */
function page(name: string): string {
  return readFileSync(new URL(`../../ui/${name}`, import.meta.url), 'utf8');
}

/** Everything a page needs is inline or served by the same process (the client module): nothing may load from elsewhere (no CDN). */
const CSP = "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'";

/** Serves one HTML page at `path`, read once. */
export function mountPage(app: TemplatedApp, path: string, name: string): void {
  const html = page(name);
  app.get(path, (res) => {
    res.cork(() => {
      res
        .writeHeader('Content-Type', 'text/html; charset=utf-8')
        .writeHeader('Content-Security-Policy', CSP)
        .writeHeader('X-Content-Type-Options', 'nosniff')
        .writeHeader('Referrer-Policy', 'no-referrer')
        .writeHeader('Cache-Control', 'no-cache')
        .end(html);
    });
  });
}

/** Serves the browser client (`client/wsgw-client.js`, read once) at `/wsgw-client.js`, for pages that import it from the gateway. */
export function mountClient(app: TemplatedApp): void {
  const js = readFileSync(new URL('../../client/wsgw-client.js', import.meta.url), 'utf8');
  app.get('/wsgw-client.js', (res) => {
    res.cork(() => {
      res.writeHeader('Content-Type', 'text/javascript; charset=utf-8').writeHeader('X-Content-Type-Options', 'nosniff').writeHeader('Cache-Control', 'no-cache').end(js);
    });
  });
}

export interface AdminUiOptions {
  readonly view: DirectoryView;
  readonly directory: ConnectionDirectory;
  /** The connection service's token ('' when none); /ui/events needs it like the API does. */
  readonly token: string;
  readonly log: Logger;
  /** Records in the first snapshot a page gets (the rest arrive as changes, or via the API). */
  readonly snapshotLimit?: number;
}

const BATCH_MS = 100;
const GATEWAYS_MS = 2_000;
const PING_MS = 15_000;
/** A page that stops reading is dropped past this many bytes queued (it reconnects for a snapshot). */
const MAX_BUFFERED = 4 * 1024 * 1024;

/**
 * The admin page of the connection service: `GET /ui` (the page; it holds no data), and
 * `GET /ui/events`, a server-sent event stream behind the service's token: a snapshot of the
 * directory, then its changes (from the KV watch, batched every 100 ms) and the gateways with their
 * lease health and connection counts every 2 s. Actions on the page use the ordinary HTTP API.
 */
export function mountAdminUi(app: TemplatedApp, options: AdminUiOptions): { close(): void } {
  const { view, directory, log } = options;
  const snapshotLimit = options.snapshotLimit ?? 10_000;
  const streams = new Set<() => void>();
  mountPage(app, '/ui', 'admin.html');

  app.get('/ui/events', (res: HttpResponse, req) => {
    if (options.token !== '' && !bearerMatches(req.getHeader('authorization'), options.token)) {
      serve(res, () => UNAUTHORIZED, () => undefined);
      return;
    }
    let open = true;
    let pending: Array<{ id: string; record: ConnectionRecord | null }> = [];
    // what uWS holds for a page that is not reading: once past MAX_BUFFERED the page is dropped (it
    // reconnects and starts again from a snapshot)
    let blocked = 0;
    const send = (chunk: string) => {
      if (!open) return;
      if (blocked > MAX_BUFFERED) {
        end();
        return;
      }
      res.cork(() => {
        if (!res.write(chunk) || blocked > 0) blocked += chunk.length;
      });
    };
    res.onWritable(() => {
      blocked = 0;
      return true;
    });
    const event = (type: string, data: unknown) => send(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
    const flush = () => {
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      event('changes', batch);
    };
    const sendGateways = () =>
      view.gateways(directory).then(
        (gateways) => event('gateways', { gateways }),
        (err: unknown) => log.warn({ err }, 'admin page: cannot read gateway leases'),
      );
    const stopWatch = view.onChange((id, record) => pending.push({ id, record }));
    const timers = [setInterval(flush, BATCH_MS), setInterval(sendGateways, GATEWAYS_MS), setInterval(() => send(': ping\n\n'), PING_MS)];
    const stop = () => {
      if (!open) return;
      open = false;
      stopWatch();
      timers.forEach(clearInterval);
      streams.delete(end);
    };
    function end(): void {
      if (!open) return;
      stop();
      res.cork(() => res.end());
    }
    streams.add(end);
    res.onAborted(stop);
    res.cork(() => {
      res.writeStatus('200 OK').writeHeader('Content-Type', 'text/event-stream').writeHeader('Cache-Control', 'no-cache').writeHeader('X-Accel-Buffering', 'no');
    });
    event('snapshot', { connections: view.first(snapshotLimit), total: view.records.size });
    void sendGateways();
  });

  return {
    close() {
      for (const end of [...streams]) end();
    },
  };
}
