import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import uWS, { type TemplatedApp } from 'uWebSockets.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../errors/errors.js';

/** A listener's certificate and private key files (PEM); both empty: plain ws:// and http://. */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
}

/** `--tls-cert` and `--tls-key` as TlsFiles. */
export function tlsFiles(config: Pick<Config, 'tlsCert' | 'tlsKey'>): TlsFiles {
  return { cert: config.tlsCert, key: config.tlsKey };
}

function read(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError([`option ${flag}: cannot read ${path} (${(err as Error).message})`]);
  }
}

/**
 * Checks a listener's certificate and key before anything starts (a gateway would otherwise connect
 * to NATS first), so a bad file is reported naming its option; uWebSockets.js itself only says "App
 * construction failed".
 */
export function checkTlsFiles(tls: TlsFiles): void {
  if (tls.cert === '' && tls.key === '') return;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(read(tls.cert, '--tls-cert'));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([`option --tls-cert: ${tls.cert} is not a PEM certificate (${(err as Error).message})`]);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(read(tls.key, '--tls-key'));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([`option --tls-key: ${tls.key} is not an unencrypted PEM private key (${(err as Error).message})`]);
  }
  if (!cert.checkPrivateKey(key)) throw new ConfigError([`options --tls-cert and --tls-key: the key in ${tls.key} does not belong to the certificate in ${tls.cert}`]);
}

/** The uWebSockets.js app a gateway or the connection service listens with: TLS (wss://, https://) when a certificate and key are given, plain otherwise. */
export function createApp(tls: TlsFiles): TemplatedApp {
  if (tls.cert === '' && tls.key === '') return uWS.App();
  checkTlsFiles(tls);
  try {
    return uWS.SSLApp({ cert_file_name: tls.cert, key_file_name: tls.key });
  } catch (err) {
    throw new ConfigError([`options --tls-cert and --tls-key: uWebSockets.js refused them (${(err as Error).message})`]);
  }
}

/** `ws`/`wss` or `http`/`https` for a listener with these files. */
export function scheme(tls: TlsFiles, ws: boolean): string {
  const secure = tls.cert !== '';
  return ws ? (secure ? 'wss' : 'ws') : secure ? 'https' : 'http';
}
