/**
 * The token families the auth service revoked (refresh-token reuse, revocation, a reset password
 * or a disabled account), polled every few seconds: an access token whose `sid` is listed is
 * refused although its signature and `exp` are fine. A failed poll keeps the last list (logged and
 * counted); the list is bounded by the auth service, which forgets families whose tokens expired.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { PeerClient } from '@codelab/service-kit';
import type { GatewayMetrics } from '../metrics.ts';

export class RevokedFamilies {
  private families = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private readonly listeners = new Set<(has: (familyId: string) => boolean) => void>();

  private readonly opts: {
    auth: PeerClient;
    internalApiKey: string;
    intervalMs: number;
    metrics: GatewayMetrics;
    logger: FastifyBaseLogger;
  };

  constructor(opts: { auth: PeerClient; internalApiKey: string; intervalMs: number; metrics: GatewayMetrics; logger: FastifyBaseLogger }) {
    this.opts = opts;
  }

  has(familyId: string): boolean {
    return this.families.has(familyId);
  }

  /** Called after every successful poll (open WebSockets of a revoked login are closed from here). */
  onUpdate(listener: (has: (familyId: string) => boolean) => void): void {
    this.listeners.add(listener);
  }

  start(): void {
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One poll (concurrent callers share it). */
  poll(): Promise<void> {
    this.polling ??= this.fetch().finally(() => {
      this.polling = undefined;
    });
    return this.polling;
  }

  private async fetch(): Promise<void> {
    try {
      const { statusCode, body } = await this.opts.auth.json<{ families?: string[] }>({
        method: 'GET',
        path: '/internal/revoked-token-families',
        route: '/internal/revoked-token-families',
        headers: { 'x-internal-auth': this.opts.internalApiKey },
      });
      if (statusCode !== 200 || !Array.isArray(body?.families)) throw new Error(`answered ${statusCode}`);
      this.families = new Set(body.families);
      this.opts.metrics.revokedFamilies.set(this.families.size);
      this.opts.metrics.revocationPolls.inc({ outcome: 'ok' });
      for (const listener of this.listeners) listener((id) => this.families.has(id));
    } catch (err) {
      this.opts.metrics.revocationPolls.inc({ outcome: 'error' });
      this.opts.logger.warn(
        { err: { message: (err as Error).message }, known: this.families.size },
        'revoked token families could not be fetched; keeping the last list',
      );
    }
  }
}
