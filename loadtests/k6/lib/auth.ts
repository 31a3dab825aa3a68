/**
 * Tokens from the auth service (OAuth 2.0 password and refresh_token grants of the public
 * `codelab-flutter-app` client, as the IDE gets them). The api and chat scripts log in once in
 * setup() and share the access token with every VU: one login, not one per VU, so the auth
 * service's per-address rate limit and refresh-token reuse detection stay out of their way.
 */
import http, { type RefinedResponse } from 'k6/http';

export interface Credentials {
  clientId: string;
  username: string;
  password: string;
}

export interface TokenResponse {
  access_token: string;
  refresh_token?: string;
  token_type: string;
  expires_in: number;
  scope?: string;
}

/** `CLIENT_ID` (codelab-flutter-app), `USERNAME` (admin) and `PASSWORD` (required: `data/auth/admin-password` after `npm start`). */
export function credentials(env: Record<string, string | undefined> = __ENV): Credentials {
  const password = env.PASSWORD;
  if (!password)
    throw new Error('PASSWORD is not set: run k6 with -e PASSWORD="$(cat data/auth/admin-password)" (the admin password npm start wrote)');
  return { clientId: env.CLIENT_ID || 'codelab-flutter-app', username: env.USERNAME || 'admin', password };
}

const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

export function passwordGrant(authUrl: string, creds: Credentials): RefinedResponse<'text'> {
  return http.post(
    `${authUrl}/oauth/token`,
    { grant_type: 'password', client_id: creds.clientId, username: creds.username, password: creds.password },
    { headers: FORM, tags: { name: 'POST /oauth/token (password)' } },
  );
}

export function refreshGrant(authUrl: string, clientId: string, refreshToken: string): RefinedResponse<'text'> {
  return http.post(
    `${authUrl}/oauth/token`,
    { grant_type: 'refresh_token', client_id: clientId, refresh_token: refreshToken },
    { headers: FORM, tags: { name: 'POST /oauth/token (refresh_token)' } },
  );
}

/** The token body of a 200 answer, or undefined. */
export function tokenOf(res: RefinedResponse<'text'>): TokenResponse | undefined {
  if (res.status !== 200 || typeof res.body !== 'string') return undefined;
  try {
    const body = JSON.parse(res.body) as Partial<TokenResponse>;
    return typeof body.access_token === 'string' && typeof body.expires_in === 'number' ? (body as TokenResponse) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * setup(): one password grant whose access token must outlive the run (`runSeconds`, plus a
 * minute for the last iterations), since the VUs cannot refresh one shared token (a second use of
 * a refresh token revokes its whole lineage). A soak run needs a client with a longer lifetime.
 */
export function loginForRun(authUrl: string, runSeconds: number, creds: Credentials = credentials()): string {
  const res = passwordGrant(authUrl, creds);
  const token = tokenOf(res);
  if (!token)
    throw new Error(
      `login of ${creds.username} with client ${creds.clientId} at ${authUrl} failed: ${res.status} ${String(res.body).slice(0, 200)}`,
    );
  const needed = runSeconds + 60;
  if (token.expires_in < needed) {
    throw new Error(
      `the access token of client ${creds.clientId} lives ${token.expires_in} s but this run needs ${needed} s: ` +
        `create a client whose tokens live longer (loadtests/README.md, "Runs longer than a token") and run with -e CLIENT_ID=<its id>`,
    );
  }
  return token.access_token;
}
