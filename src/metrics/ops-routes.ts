import type { TemplatedApp } from 'uWebSockets.js';
import type { Metrics } from './metrics.js';

/**
 * `GET /metrics` (Prometheus text) and `GET /readyz` for a service's HTTP app. `notReady` returns why
 * the service should not get traffic now, or null; `beforeScrape` refreshes gauges.
 */
export function mountOpsRoutes(app: TemplatedApp, metrics: Metrics, notReady: () => string | null, beforeScrape: () => void = () => undefined): void {
  app.get('/readyz', (res) => {
    const why = notReady();
    res.writeStatus(why === null ? '200 OK' : '503 Service Unavailable').writeHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(why === null ? { ready: true } : { ready: false, reason: why }));
  });
  app.get('/metrics', (res) => {
    let aborted = false;
    res.onAborted(() => (aborted = true));
    beforeScrape();
    metrics.text().then((text) => {
      if (!aborted) res.cork(() => res.writeHeader('Content-Type', metrics.contentType).end(text));
    });
  });
}
