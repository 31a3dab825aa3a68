/**
 * The auth service's signing keys, cached by the gateway. A token naming a `kid` the cache does not
 * know triggers a refetch (at most once per cool-down, so forged kids cannot hammer auth); the set
 * is also refreshed in the background once it is older than its max age. When auth cannot be
 * reached the gateway keeps verifying with the set it has; only a gateway that never got a set
 * refuses, with 503 rather than 401 (the token may well be valid).
 */
import { importJWK, type JWK } from 'jose';
import type { FastifyBaseLogger } from 'fastify';
import type { PeerClient } from '@codelab/service-kit';
import type { GatewayMetrics } from '../metrics.ts';

export class JwksUnavailableError extends Error {}

export interface JwksCacheOptions {
  auth: PeerClient;
  metrics: GatewayMetrics;
  logger: FastifyBaseLogger;
  /** Refresh the set in the background once it is this old. */
  maxAgeMs?: number;
  /** Minimum time between refetches caused by unknown kids. */
  unknownKidCooldownMs?: number;
}

type Reason = 'initial' | 'expired' | 'unknown_kid';

export class JwksCache {
  private keys = new Map<string, CryptoKey>();
  private fetchedAt = 0;
  private lastAttempt = 0;
  private lastUnknownKidFetch = 0;
  private inflight: Promise<void> | undefined;
  private readonly maxAgeMs: number;
  private readonly cooldownMs: number;

  constructor(private readonly opts: JwksCacheOptions) {
    this.maxAgeMs = opts.maxAgeMs ?? 300_000;
    this.cooldownMs = opts.unknownKidCooldownMs ?? 30_000;
  }

  /**
   * Whether `kid` is in the cached set, without waiting for a fetch (a retired key's tokens stop
   * being accepted once the set is refreshed; a stale set starts a background refresh).
   */
  knows(kid: string): boolean {
    this.refreshIfStale();
    return this.keys.has(kid);
  }

  /** A stale set is refreshed in the background; after a failed attempt, not again for a while (auth may be down). */
  private refreshIfStale(): void {
    const now = Date.now();
    if (this.fetchedAt === 0 || now - this.fetchedAt <= this.maxAgeMs || now - this.lastAttempt < Math.min(this.maxAgeMs, 5000)) return;
    this.refresh('expired').catch(() => undefined);
  }

  /** The verification key for `kid`, or undefined when auth does not publish it. */
  async key(kid: string): Promise<CryptoKey | undefined> {
    if (this.fetchedAt === 0) {
      await this.refresh('initial').catch((err: unknown) => {
        throw new JwksUnavailableError(`the signing keys could not be fetched from the auth service: ${(err as Error).message}`);
      });
    } else {
      this.refreshIfStale(); // keep verifying with the cached set meanwhile
    }
    const known = this.keys.get(kid);
    if (known) return known;
    if (Date.now() - this.lastUnknownKidFetch < this.cooldownMs) return undefined;
    this.lastUnknownKidFetch = Date.now();
    await this.refresh('unknown_kid').catch(() => undefined);
    return this.keys.get(kid);
  }

  /** Fetches the set now (concurrent callers share one fetch). */
  refresh(reason: Reason): Promise<void> {
    this.inflight ??= this.fetch(reason).finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async fetch(reason: Reason): Promise<void> {
    this.lastAttempt = Date.now();
    try {
      const { statusCode, body } = await this.opts.auth.json<{ keys?: JWK[] }>({ method: 'GET', path: '/.well-known/jwks.json', route: '/.well-known/jwks.json' });
      if (statusCode !== 200 || !Array.isArray(body?.keys)) throw new Error(`JWKS answered ${statusCode}`);
      const next = new Map<string, CryptoKey>();
      for (const jwk of body.keys) {
        if (jwk.kty !== 'RSA' || !jwk.kid || (jwk.alg && jwk.alg !== 'RS256') || (jwk.use && jwk.use !== 'sig')) continue;
        next.set(jwk.kid, (await importJWK(jwk, 'RS256')) as CryptoKey);
      }
      if (next.size === 0) throw new Error('the JWKS has no RS256 signing key');
      this.keys = next; // keys no longer published (retired) stop verifying
      this.fetchedAt = Date.now();
      this.opts.metrics.jwksKeys.set(next.size);
      this.opts.metrics.jwksRefreshes.inc({ reason, outcome: 'ok' });
    } catch (err) {
      this.opts.metrics.jwksRefreshes.inc({ reason, outcome: 'error' });
      this.opts.logger.warn({ err: { message: (err as Error).message }, reason, cached_keys: this.keys.size }, 'JWKS refresh failed; verifying with the cached keys');
      throw err;
    }
  }
}
