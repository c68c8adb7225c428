// The Docker Engine API server: node:http on unix sockets. It adds the standard headers,
// strips and checks the version prefix, routes, and maps any thrown error exactly once
// (errors.ts) to a status and `{"message"}` body. A failing handler never takes the
// daemon down.
import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { BerthError, toBerthError } from '../util/errors';
import { logger } from '../util/log';
import type { DaemonServices } from '../daemon/services';
import { Router, splitVersionPrefix, negotiateApiVersion } from './router';
import { RequestContext, Query, type UpgradeSocket } from './context';
import { setStandardHeaders, sendError, isJsonStream } from './response';

export interface ApiServerOptions {
  router: Router;
  services: DaemonServices;
  /** Owner given to the socket file; root:root on a real install. */
  socketOwner?: { uid: number; gid: number };
  socketMode?: number;
}

const log = logger('api');

export class ApiServer {
  private readonly servers: Array<{ server: Server; path: string }> = [];
  private readonly upgradedSockets = new Set<Duplex>();
  private readonly router: Router;
  private readonly services: DaemonServices;
  private readonly socketOwner: { uid: number; gid: number };
  private readonly socketMode: number;

  constructor(options: ApiServerOptions) {
    this.router = options.router;
    this.services = options.services;
    this.socketOwner = options.socketOwner ?? { uid: 0, gid: 0 };
    this.socketMode = options.socketMode ?? 0o660;
  }

  /**
   * Listens on a unix socket. The caller must already hold the data-root lock: a
   * leftover socket file is removed here, which would be wrong if another daemon owned it.
   */
  async listenUnix(path: string): Promise<void> {
    // A client that never finishes its headers is cut after 10 s, checked every second so
    // stalled sockets do not pile up. No whole-request limit: image loads and docker cp
    // uploads may stream for minutes.
    const server = createServer({ requestTimeout: 0, headersTimeout: 10_000, connectionsCheckingInterval: 1_000, keepAliveTimeout: 5_000 });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => { void this.dispatch(req, res); });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => { this.dispatchUpgrade(req, socket, head); });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (err.code !== 'ECONNRESET' && socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });

    await fsp.mkdir(dirname(path), { recursive: true });
    await fsp.rm(path, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => { server.off('error', reject); resolve(); });
    });
    server.on('error', (err) => log.error('server error', { socket: path, error: err.message }));
    await fsp.chmod(path, this.socketMode);
    try {
      await fsp.chown(path, this.socketOwner.uid, this.socketOwner.gid);
    } catch (err) {
      // An unprivileged daemon (development) cannot give the socket away; root always can.
      if ((err as NodeJS.ErrnoException).code !== 'EPERM' || process.getuid?.() === 0) throw err;
      log.warn('cannot chown the socket; leaving it owned by the daemon user', { socket: path });
    }
    this.servers.push({ server, path });
    log.info('API listening', { socket: `unix://${path}` });
  }

  /**
   * Stops accepting, lets in-flight requests finish for up to `graceMs`, then cuts the
   * remaining connections (long streams such as events or logs -f).
   */
  async close(graceMs = 3000): Promise<void> {
    const closing = this.servers.map(({ server, path }) => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      // Sockets removed even if close takes the whole grace period.
      void fsp.rm(path, { force: true }).catch(() => {});
    }));
    const timer = setTimeout(() => this.closeNow(), graceMs);
    timer.unref();
    await Promise.all(closing);
    clearTimeout(timer);
    for (const socket of this.upgradedSockets) socket.destroy();
  }

  /** Cuts every open connection, in-flight or not. */
  closeNow(): void {
    for (const { server } of this.servers) server.closeAllConnections();
    for (const socket of this.upgradedSockets) socket.destroy();
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, upgrade?: UpgradeSocket): Promise<void> {
    const started = Date.now();
    res.on('error', (err) => log.debug('response error', { error: err.message }));
    req.on('error', (err) => log.debug('request error', { error: err.message }));
    setStandardHeaders(res);
    try {
      const url = new URL(req.url ?? '/', 'http://berth');
      const { version, path } = splitVersionPrefix(url.pathname);
      const apiVersion = negotiateApiVersion(version);
      const method = req.method ?? 'GET';
      const match = this.router.match(method, path);
      if (!match) throw new BerthError('ENOTFOUND', 'page not found');
      const ctx = new RequestContext(req, res, path, match.params, new Query(url.searchParams), apiVersion, this.services, log,
        upgrade && match.options.upgrade ? upgrade : undefined);
      await match.handler(ctx);
    } catch (err) {
      this.fail(req, res, err);
    } finally {
      log.debug('request', { method: req.method, url: req.url, status: res.statusCode, ms: Date.now() - started });
    }
  }

  /** Maps an error to the response, whatever state the response is in. */
  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const e = toBerthError(err);
    if (e.code === 'EINTERNAL') log.error('request failed', { method: req.method, url: req.url, error: e.message, stack: (e.cause as Error | undefined)?.stack });
    try {
      if (!res.headersSent) {
        // Headers a handler set for its success response must not leak into the error.
        for (const name of res.getHeaderNames()) if (!['api-version', 'docker-experimental', 'ostype', 'server'].includes(name)) res.removeHeader(name);
        sendError(res, e);
      } else if (isJsonStream(res) && !res.writableEnded) {
        res.end(JSON.stringify({ errorDetail: { message: e.message }, error: e.message }) + '\r\n');
      } else if (!res.writableEnded) {
        // Output of another kind has started: nothing truthful can follow, so cut it.
        res.destroy();
      }
    } catch (writeErr) {
      log.debug('cannot report error', { error: (writeErr as Error).message });
      res.destroy();
    }
  }

  /**
   * `Connection: Upgrade` requests arrive here instead of 'request'. A real
   * ServerResponse is bound to the socket so ordinary handlers (and errors) answer them
   * as usual; routes declared with `upgrade: true` get the raw socket in ctx.upgrade.
   */
  private dispatchUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.upgradedSockets.add(socket);
    socket.on('close', () => this.upgradedSockets.delete(socket));
    socket.on('error', (err) => log.debug('upgraded socket error', { error: err.message }));
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as unknown as import('node:net').Socket);
    res.on('finish', () => {
      // The handler either answered normally (close the connection) or took the socket.
      if (!socket.destroyed && res.statusCode !== 101) socket.end();
    });
    void this.dispatch(req, res, { socket, head });
  }
}
