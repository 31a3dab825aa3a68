/**
 * The three OAuth calls of auth: password grant, refresh-token grant (with rotation) and RFC 7009
 * revocation, as form posts. Errors carry the server's `error_description` (what a person reads).
 */
import { config } from '../config.ts';

export interface TokenAnswer {
  access_token: string;
  refresh_token?: string;
  expires_in: number;
  token_type: string;
  scope?: string;
}

class OAuthError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function postForm(path: string, fields: Record<string, string>): Promise<Response> {
  return fetch(`${config().authUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(fields).toString(),
  });
}

async function tokenRequest(fields: Record<string, string>): Promise<TokenAnswer> {
  let res: Response;
  try {
    res = await postForm('/oauth/token', { ...fields, client_id: config().clientId });
  } catch {
    throw new OAuthError(0, 'network_error', 'The sign-in service cannot be reached.');
  }
  const body = (await res.json().catch(() => ({}))) as Partial<TokenAnswer> & {
    error?: string | { code?: string; message?: string };
    error_description?: string;
  };
  if (!res.ok || !body.access_token) {
    const code = typeof body.error === 'string' ? body.error : (body.error?.code ?? 'error');
    const message =
      body.error_description ?? (typeof body.error === 'object' ? body.error.message : undefined) ?? `Sign-in failed (${res.status}).`;
    throw new OAuthError(res.status, code, message);
  }
  return body as TokenAnswer;
}

export function passwordGrant(username: string, password: string): Promise<TokenAnswer> {
  // ask for everything: a non-admin is granted the rest, and `scope` in the answer says what
  return tokenRequest({ grant_type: 'password', username, password, scope: 'api:read api:write api:admin' });
}

export function refreshGrant(refreshToken: string): Promise<TokenAnswer> {
  return tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken });
}

/** Best effort: signing out forgets the tokens whatever auth answers. */
export async function revokeRefreshToken(refreshToken: string): Promise<void> {
  await postForm('/oauth/revoke', { token: refreshToken, token_type_hint: 'refresh_token', client_id: config().clientId }).catch(
    () => undefined,
  );
}
