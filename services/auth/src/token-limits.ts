/**
 * The token endpoint's defences, as hooks of POST /oauth/token: a per-address rate limit, then the
 * brute-force lock (per normalized username and per client address) checked before any password is
 * verified; failures of the password grant are counted the same whether the user exists or not,
 * and a successful login clears the username's count.
 */
import type { Database } from '@codelab/service-kit';
import { lockedOut, rateLimited } from './errors.ts';
import { auditRequest, type TokenRequestContext } from './grants/context.ts';
import { clientKey, type LoginGuard, type RateLimiter } from './limits/index.ts';
import type { TokenHooks } from './routes/oauth-token.ts';

/** Failures that count towards a lock: a wrong password for an existing, unknown or disabled user alike. */
const COUNTED_FAILURES = new Set(['unknown_user', 'wrong_password', 'inactive_user']);

export function createTokenLimits(opts: { db: Database; guard: LoginGuard; limiter: RateLimiter | undefined }): TokenHooks {
  const { db, guard, limiter } = opts;
  const username = (ctx: TokenRequestContext): string | undefined =>
    ctx.grantType === 'password' && ctx.form.username ? ctx.form.username : undefined;

  return {
    async beforeCredentials(ctx) {
      if (limiter) {
        const r = await limiter.hit(clientKey(ctx.ip));
        if (!r.allowed) {
          ctx.failureReason = 'rate_limited';
          if (r.firstRefusal) {
            await auditRequest(db, ctx, {
              eventType: 'rate_limited',
              success: false,
              eventData: { endpoint: 'token', limit: r.limit, retry_after_seconds: r.retryAfterSeconds },
            });
          }
          throw rateLimited(r.limit, r.retryAfterSeconds);
        }
      }
      const user = username(ctx);
      if (user) {
        const status = await guard.check(user, ctx.ip);
        if (status.locked) {
          ctx.failureReason = 'locked';
          throw lockedOut(status.scope, status.retryAfterSeconds);
        }
      }
    },
    async afterFailure(ctx) {
      const user = username(ctx);
      if (!user || !ctx.failureReason || !COUNTED_FAILURES.has(ctx.failureReason)) return;
      const outcome = await guard.recordFailure(user, ctx.ip);
      for (const scope of outcome.lockouts) {
        const retry = outcome.status.locked ? outcome.status.retryAfterSeconds : undefined;
        ctx.request.log.warn({ scope, retry_after_seconds: retry }, 'login locked after repeated failures');
        await auditRequest(db, ctx, {
          eventType: 'lockout',
          success: false,
          userId: ctx.userId,
          eventData: { scope, username: user.slice(0, 255), retry_after_seconds: retry },
        });
      }
    },
    async afterSuccess(ctx) {
      const user = username(ctx);
      if (user) await guard.recordSuccess(user, ctx.ip);
    },
  };
}
