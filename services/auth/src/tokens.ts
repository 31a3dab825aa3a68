/**
 * Token pairs: an access and a refresh JWT (RS256, same claim set as upstream §3.4), and the
 * refresh token's sha256(jti) persisted so that it can be rotated and revoked. The
 * client_credentials grant gets an access token alone, whose `sub` is the client id (RFC 9068 §2.2:
 * no resource owner is involved).
 */
import { createHash, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Queryable } from '@codelab/service-kit';
import { SIGNING_ALG, type KeyRing } from './keys.ts';

type TokenType = 'access' | 'refresh';

export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  type: TokenType;
  client_id: string;
  scope: string;
}

interface TokenPairRequest {
  userId: string;
  clientId: string;
  scope: string;
  /** Seconds. */
  accessTokenLifetime: number;
  refreshTokenLifetime: number;
  /** sha256 of the refresh token this pair replaces (rotation). */
  parentJtiHash?: string;
  /** The family (login) this pair belongs to: kept across rotations; a new login starts one. */
  familyId?: string;
}

interface TokenPair {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  scope: string;
}

interface AccessTokenRequest {
  /** `sub`: a user id, or the client id for client_credentials. */
  subject: string;
  clientId: string;
  scope: string;
  /** Seconds. */
  lifetime: number;
}

interface AccessToken {
  accessToken: string;
  expiresIn: number;
  scope: string;
}

export interface TokenIssuer {
  /** Signs a pair and records its refresh token through `db` (pass a transaction to make it atomic with other writes). */
  issuePair(db: Queryable, request: TokenPairRequest): Promise<TokenPair>;
  /** Signs an access token alone (nothing is stored: access tokens are stateless). */
  issueAccessToken(request: AccessTokenRequest): Promise<AccessToken>;
}

export function hashJti(jti: string): string {
  return createHash('sha256').update(jti, 'utf8').digest('hex');
}

export function createTokenIssuer(opts: { keys: KeyRing; issuer: string; audience: string }): TokenIssuer {
  const sign = (
    type: TokenType,
    request: { subject: string; clientId: string; scope: string; familyId?: string },
    now: number,
    lifetime: number,
  ): Promise<{ token: string; jti: string; exp: number }> => {
    const jti = randomUUID();
    const exp = now + lifetime;
    const claims: Pick<TokenClaims, 'type' | 'client_id' | 'scope'> & { sid?: string } = {
      type,
      client_id: request.clientId,
      scope: request.scope,
      // the token family: a verifier refuses every token of a revoked family
      ...(request.familyId ? { sid: request.familyId } : {}),
    };
    return new SignJWT(claims)
      .setProtectedHeader({ alg: SIGNING_ALG, typ: 'JWT', kid: opts.keys.kid })
      .setIssuer(opts.issuer)
      .setSubject(request.subject)
      .setAudience(opts.audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(opts.keys.signingKey)
      .then((token) => ({ token, jti, exp }));
  };

  return {
    async issuePair(db, request) {
      const now = Math.floor(Date.now() / 1000);
      const familyId = request.familyId ?? randomUUID();
      const subject = { subject: request.userId, clientId: request.clientId, scope: request.scope, familyId };
      const [access, refresh] = await Promise.all([
        sign('access', subject, now, request.accessTokenLifetime),
        sign('refresh', subject, now, request.refreshTokenLifetime),
      ]);
      await db.query(
        `INSERT INTO refresh_tokens (jti_hash, user_id, client_id, scope, expires_at, parent_jti_hash, family_id)
         VALUES ($1, $2, $3, $4, to_timestamp($5), $6, $7)`,
        [hashJti(refresh.jti), request.userId, request.clientId, request.scope, refresh.exp, request.parentJtiHash ?? null, familyId],
      );
      return { accessToken: access.token, refreshToken: refresh.token, expiresIn: request.accessTokenLifetime, scope: request.scope };
    },
    async issueAccessToken(request) {
      const access = await sign('access', request, Math.floor(Date.now() / 1000), request.lifetime);
      return { accessToken: access.token, expiresIn: request.lifetime, scope: request.scope };
    },
  };
}
