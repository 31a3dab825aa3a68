/**
 * Verification of the tokens this service issued (refresh tokens at the token endpoint, any token
 * at the revocation endpoint): RS256 only, with a key of the ring picked by `kid` (the ring is read
 * at every call, so a rotation is seen at once), issuer, audience, exp and nbf (no leeway, as
 * upstream), and the claim set tokens.ts writes.
 */
import { errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { SIGNING_ALG, type KeyRing } from './keys.ts';
import type { TokenClaims } from './tokens.ts';

export interface TokenVerifier {
  /** The claims of a valid token of ours; undefined for anything else (malformed, forged, expired, foreign). */
  verify(token: string): Promise<TokenClaims | undefined>;
}

const isString = (v: unknown): v is string => typeof v === 'string' && v !== '';

export function createTokenVerifier(opts: { keys: KeyRing; issuer: string; audience: string }): TokenVerifier {
  const keyFor: JWTVerifyGetKey = (header) => {
    const key = opts.keys.verificationKeys.find((k) => k.kid === header.kid);
    if (!key) throw new joseErrors.JWKSNoMatchingKey();
    return key.key;
  };
  return {
    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, keyFor, {
          algorithms: [SIGNING_ALG],
          issuer: opts.issuer,
          audience: opts.audience,
          requiredClaims: ['sub', 'jti', 'exp', 'iat', 'nbf'],
        });
        const { type, client_id: clientId, scope } = payload as Record<string, unknown>;
        if (
          (type !== 'access' && type !== 'refresh') ||
          !isString(clientId) ||
          typeof scope !== 'string' ||
          !isString(payload.sub) ||
          !isString(payload.jti)
        ) {
          return undefined;
        }
        return payload as unknown as TokenClaims;
      } catch {
        return undefined;
      }
    },
  };
}
