/**
 * runService: listen, then shut down gracefully on SIGTERM/SIGINT. Shutdown stops accepting,
 * lets in-flight requests and streams finish within the grace period (then cuts what is left),
 * runs the service's close hooks (WebSockets 1001, pools, embedded database), flushes telemetry and
 * exits 0. A failure to start exits 1 with the reason.
 */
import type { Service } from './service.ts';
import { shutdownTracing } from './tracing.ts';

export interface RunOptions {
  host: string;
  port: number;
  shutdownGraceSeconds: number;
}

export async function listen(service: Service, opts: Pick<RunOptions, 'host' | 'port'>): Promise<string> {
  await service.app.listen({ host: opts.host, port: opts.port });
  const addr = service.app.server.address();
  return typeof addr === 'object' && addr ? `http://${opts.host}:${addr.port}` : String(addr);
}

/**
 * Graceful stop: drain, close fastify (its preClose/onClose hooks close WebSockets and pools),
 * and force-close connections still open when the grace period ends.
 */
export async function stopService(service: Service, graceSeconds: number): Promise<{ forced: boolean }> {
  service.startDraining();
  let forced = false;
  const timer = setTimeout(() => {
    forced = true;
    service.logger.warn({ grace_seconds: graceSeconds }, 'grace period over: closing the connections still open');
    service.app.server.closeAllConnections();
  }, graceSeconds * 1000);
  timer.unref();
  try {
    await service.app.close();
  } finally {
    clearTimeout(timer);
  }
  return { forced };
}

export async function runService(service: Service, opts: RunOptions): Promise<void> {
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    service.logger.info({ signal }, 'shutting down');
    let code = 0;
    try {
      const { forced } = await stopService(service, opts.shutdownGraceSeconds);
      service.logger.info({ forced }, 'stopped');
    } catch (err) {
      service.logger.error({ err }, 'error during shutdown');
      code = 1;
    }
    await shutdownTracing();
    service.logger.flush?.();
    setImmediate(() => process.exit(code));
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  try {
    const url = await listen(service, opts);
    service.logger.info({ url, version: service.version }, `${service.name} listening`);
  } catch (err) {
    service.logger.fatal({ err }, `${service.name} failed to start`);
    await service.app.close().catch(() => undefined);
    await shutdownTracing();
    process.exit(1);
  }
}
