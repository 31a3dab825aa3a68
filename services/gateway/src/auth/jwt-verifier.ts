/**
 * Access-token verification against the auth service's JWKS (RS256 only, issuer, audience, expiry,
 * `type: access`). The key set is cached and refetched when a token names an unknown `kid`
 * (jose's remote JWKS, with a cool-down so unknown kids cannot hammer auth).
 */
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';

export interface Principal {
  sub: string;
  scope: string;
  clientId: string | undefined;
}

export type VerifyOutcome = 'ok' | 'missing' | 'invalid' | 'expired' | 'wrong_type' | 'jwks_unavailable';

export class TokenRejected extends Error {
  readonly outcome: VerifyOutcome;
  constructor(outcome: VerifyOutcome, message: string) {
    super(message);
    this.outcome = outcome;
  }
}

export function createJwtVerifier(opts: { jwksUrl: string; issuer: string; audience: string }) {
  const jwks = createRemoteJWKSet(new URL(opts.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000, timeoutDuration: 5_000 });
  return async function verify(token: string | undefined): Promise<Principal> {
    if (!token) throw new TokenRejected('missing', 'A bearer token is required');
    try {
      const { payload } = await jwtVerify(token, jwks, { issuer: opts.issuer, audience: opts.audience, algorithms: ['RS256'] });
      if (payload.type !== 'access') throw new TokenRejected('wrong_type', 'Invalid token type: an access token is required');
      if (typeof payload.sub !== 'string' || payload.sub === '') throw new TokenRejected('invalid', 'The token has no subject');
      return { sub: payload.sub, scope: typeof payload.scope === 'string' ? payload.scope : '', clientId: typeof payload.client_id === 'string' ? payload.client_id : undefined };
    } catch (err) {
      if (err instanceof TokenRejected) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new TokenRejected('expired', 'The token has expired');
      if (err instanceof joseErrors.JWKSTimeout || (err instanceof Error && /fetch|ECONNREFUSED|network/i.test(err.message) && !(err instanceof joseErrors.JOSEError))) {
        throw new TokenRejected('jwks_unavailable', 'The signing keys could not be fetched from the auth service');
      }
      throw new TokenRejected('invalid', `Invalid token: ${(err as Error).message}`);
    }
  };
}

export type JwtVerifier = ReturnType<typeof createJwtVerifier>;
