/**
 * The auth service's signing keys, cached by the gateway. A token naming a `kid` the cache does not
 * know triggers a refetch (at most once per cool-down, so forged kids cannot hammer auth); the set
 * is also refreshed in the background once it is older than its max age. When auth cannot be
 * reached the gateway keeps verifying with the set it has; only a gateway that never got a set
 * refuses, with 503 rather than 401 (the token may well be valid).
 *
 * At start-up (`warmUp`) the set is fetched before any token needs it. Auth may simply not listen
 * yet (it starts alongside the gateway): failures are retried with back-off and logged at info
 * ("waiting for auth") during a short start-up window; only a failure past it is a warning.
 */
import { setTimeout as sleep } from 'node:timers/promises';
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
  /** Start-up window during which an unreachable auth service is expected (info logs, not warnings). */
  startupGraceMs?: number;
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
  private readonly startupGraceMs: number;
  /** Until then, failures of the first fetch are the start-up wait for auth (info). */
  private quietUntil = 0;
  private readonly stopped = new AbortController();

  private readonly opts: JwksCacheOptions;

  constructor(opts: JwksCacheOptions) {
    this.opts = opts;
    this.maxAgeMs = opts.maxAgeMs ?? 300_000;
    this.cooldownMs = opts.unknownKidCooldownMs ?? 30_000;
    this.startupGraceMs = opts.startupGraceMs ?? 30_000;
  }

  /**
   * Fetches the set at start-up, retrying with back-off (100 ms doubling up to 2 s) until it is in
   * or `stop` is called. Within the start-up window each failure is logged at info ("waiting for
   * auth"); the first failure past it is one warning, later ones are quiet (the readiness check
   * reports auth meanwhile). Resolves true once the set is in, false when stopped first.
   */
  async warmUp(): Promise<boolean> {
    const started = Date.now();
    this.quietUntil = started + this.startupGraceMs;
    let delay = 100;
    let attempts = 0;
    let warned = false;
    while (!this.stopped.signal.aborted) {
      if (this.fetchedAt > 0) return true; // a token's lookup got there first
      attempts++;
      try {
        await this.refresh('initial');
        if (attempts > 1) this.opts.logger.info({ attempts, waited_ms: Date.now() - started }, 'auth reachable: signing keys loaded');
        return true;
      } catch (err) {
        if (Date.now() >= this.quietUntil && !warned) {
          warned = true;
          this.opts.logger.warn(
            { err: { message: (err as Error).message }, waited_ms: Date.now() - started },
            'auth still unreachable: tokens cannot be verified until it answers (retrying)',
          );
        }
      }
      await sleep(delay, undefined, { signal: this.stopped.signal }).catch(() => undefined);
      delay = Math.min(delay * 2, 2000);
    }
    return false;
  }

  /** Ends a warm-up still retrying (shutdown). */
  stop(): void {
    this.stopped.abort();
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
      const { statusCode, body } = await this.opts.auth.json<{ keys?: JWK[] }>({
        method: 'GET',
        path: '/.well-known/jwks.json',
        route: '/.well-known/jwks.json',
      });
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
      const log = { err: { message: (err as Error).message }, reason, cached_keys: this.keys.size };
      if (this.fetchedAt > 0) this.opts.logger.warn(log, 'JWKS refresh failed; verifying with the cached keys');
      else if (Date.now() < this.quietUntil) this.opts.logger.info(log, 'waiting for auth: its signing keys cannot be fetched yet');
      else if (this.quietUntil === 0) this.opts.logger.warn(log, 'JWKS fetch failed: tokens cannot be verified until auth answers');
      else this.opts.logger.debug(log, 'JWKS fetch failed: still waiting for auth');
      throw err;
    }
  }
}
