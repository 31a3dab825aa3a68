/**
 * Access-token verification: RS256 only, a `kid` the auth service publishes (see JwksCache),
 * issuer, audience, expiry and not-before, and `type: access` (a refresh token is not an access
 * token), and not from a revoked family (`sid`, see RevokedFamilies). Every refusal names its
 * reason for the metric; the message is what the client sees.
 */
import { errors as joseErrors, jwtVerify, type JWTHeaderParameters } from 'jose';
import { JwksUnavailableError, type JwksCache } from './jwks-cache.ts';

export interface Principal {
  sub: string;
  scopes: ReadonlySet<string>;
  clientId: string | undefined;
  /** The login (token family, `sid`) the token belongs to; revoking it closes the login's WebSockets. */
  familyId?: string | undefined;
}

export type VerifyOutcome =
  | 'ok'
  | 'missing'
  | 'invalid'
  | 'expired'
  | 'not_yet_valid'
  | 'unknown_kid'
  | 'wrong_type'
  | 'revoked'
  | 'jwks_unavailable';

export class TokenRejected extends Error {
  readonly outcome: VerifyOutcome;
  constructor(outcome: VerifyOutcome, message: string) {
    super(message);
    this.outcome = outcome;
  }
}

/** Tokens whose signature and claims were checked, kept so that an IDE's next calls cost a lookup. */
const VERIFIED_CACHE_SIZE = 5000;

interface Verified {
  principal: Principal;
  kid: string;
  exp: number;
  nbf: number;
  sid: string | undefined;
}

export function createJwtVerifier(opts: {
  jwks: JwksCache;
  issuer: string;
  audience: string;
  revoked?: { has(familyId: string): boolean };
}) {
  // Signature checks cost ~0.1 ms each (jose, WebCrypto); a token is usually presented many
  // times. The cache is keyed by the whole token (its signature included), and every use still
  // checks expiry, not-before, revocation, and that the signing key is still published.
  const verified = new Map<string, Verified>();
  const fromCache = (token: string): Principal | undefined => {
    const hit = verified.get(token);
    if (!hit) return undefined;
    const now = Date.now() / 1000;
    if (hit.exp <= now || hit.nbf > now || !opts.jwks.knows(hit.kid)) {
      verified.delete(token);
      return undefined; // the full check answers with the precise reason
    }
    if (hit.sid && opts.revoked?.has(hit.sid)) throw new TokenRejected('revoked', 'The token has been revoked');
    return hit.principal;
  };
  const remember = (token: string, entry: Verified): void => {
    if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!);
    verified.set(token, entry);
  };

  const keyFor = async (header: JWTHeaderParameters): Promise<CryptoKey> => {
    if (header.alg !== 'RS256') throw new TokenRejected('invalid', `Invalid token: algorithm ${String(header.alg)} is not accepted`);
    if (!header.kid) throw new TokenRejected('invalid', 'Invalid token: no key id (kid)');
    const key = await opts.jwks.key(header.kid);
    if (!key) throw new TokenRejected('unknown_kid', 'Invalid token: signed with an unknown key');
    return key;
  };
  return async function verify(token: string | undefined): Promise<Principal> {
    if (!token) throw new TokenRejected('missing', 'A bearer token is required');
    const cached = fromCache(token);
    if (cached) return cached;
    try {
      const { payload, protectedHeader } = await jwtVerify(token, keyFor, {
        issuer: opts.issuer,
        audience: opts.audience,
        algorithms: ['RS256'],
        clockTolerance: 0,
      });
      if (payload.type !== 'access') throw new TokenRejected('wrong_type', 'Invalid token type: an access token is required');
      if (typeof payload.sub !== 'string' || payload.sub === '') throw new TokenRejected('invalid', 'The token has no subject');
      if (typeof payload.sid === 'string' && opts.revoked?.has(payload.sid))
        throw new TokenRejected('revoked', 'The token has been revoked');
      const principal: Principal = {
        sub: payload.sub,
        scopes: new Set(typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : []),
        clientId: typeof payload.client_id === 'string' ? payload.client_id : undefined,
        familyId: typeof payload.sid === 'string' ? payload.sid : undefined,
      };
      if (typeof payload.exp === 'number') {
        remember(token, {
          principal,
          kid: protectedHeader.kid!,
          exp: payload.exp,
          nbf: payload.nbf ?? 0,
          sid: typeof payload.sid === 'string' ? payload.sid : undefined,
        });
      }
      return principal;
    } catch (err) {
      if (err instanceof TokenRejected) throw err;
      if (err instanceof JwksUnavailableError)
        throw new TokenRejected('jwks_unavailable', 'Tokens cannot be verified right now: the auth service is unreachable');
      if (err instanceof joseErrors.JWTExpired) throw new TokenRejected('expired', 'The token has expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf')
        throw new TokenRejected('not_yet_valid', 'The token is not valid yet');
      throw new TokenRejected('invalid', `Invalid token: ${(err as Error).message}`);
    }
  };
}

export type JwtVerifier = ReturnType<typeof createJwtVerifier>;
