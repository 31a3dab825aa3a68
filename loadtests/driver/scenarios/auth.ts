/**
 * auth: signing in as the IDE does (as loadtests/k6/auth.ts): a password grant of the public
 * `codelab-flutter-app` client, then a refresh_token grant with the refresh token it got (each
 * iteration its own login, so no refresh token is used twice). `auth_sign_in_duration`: password
 * grant sent → refreshed tokens received. The auth service limits token requests per address
 * (AUTH_SERVICE__RATE_LIMIT_PER_IP, 30 a minute): start it with AUTH_SERVICE__ENABLE_RATE_LIMITING=false
 * (or a limit above the profile's rate), or the limiter is what gets measured.
 */
import type { Response } from '../http.ts';
import { CLIENT_ID, TokenSource } from './token.ts';
import { SetupError, type Scenario } from './types.ts';

interface TokenAnswer {
  access_token: string;
  refresh_token?: string;
  expires_in: number;
}

/** The token body of a 200 answer, or undefined. */
function tokenOf(res: Response): TokenAnswer | undefined {
  if (res.status !== 200) return undefined;
  const body = res.json<Partial<TokenAnswer>>();
  return typeof body?.access_token === 'string' && typeof body.expires_in === 'number' ? (body as TokenAnswer) : undefined;
}

export const auth: Scenario<{ password: string }> = {
  name: 'auth',
  description: 'a password grant, then a refresh_token grant (POST /oauth/token, client codelab-flutter-app)',
  needs: ['auth'],
  metrics: [{ name: 'auth_sign_in_duration', type: 'trend', unit: 'ms', description: 'password grant sent → refreshed tokens received' }],
  latencyMetric: 'http_req_duration',
  errorMetric: 'http_req_failed',
  async setup(env) {
    if (!env.password)
      throw new SetupError(
        `no password for ${env.username}: pass --password or set LOAD_PASSWORD (npm start keeps the admin's in data/auth/admin-password)`,
      );
    await TokenSource.login(env); // the credentials work: a wrong password would only measure refusals
    return { password: env.password };
  },
  async iteration(state, ctx, env) {
    const { http, metrics, targets, username } = env;
    const url = `${targets.auth}/oauth/token`;
    const started = performance.now();
    const login = await http.send({
      name: 'POST /oauth/token (password)',
      method: 'POST',
      url,
      body: new URLSearchParams({ grant_type: 'password', client_id: CLIENT_ID, username, password: state.password }),
      signal: ctx.signal,
    });
    const tokens = tokenOf(login);
    metrics.check('the password grant answers 200 with an access token', tokens !== undefined);
    metrics.check('the password grant is not rate limited', login.status !== 429);
    if (!tokens?.refresh_token || ctx.signal.aborted) return;

    const refresh = await http.send({
      name: 'POST /oauth/token (refresh_token)',
      method: 'POST',
      url,
      body: new URLSearchParams({ grant_type: 'refresh_token', client_id: CLIENT_ID, refresh_token: tokens.refresh_token }),
      signal: ctx.signal,
    });
    const refreshed = tokenOf(refresh);
    metrics.check('the refresh grant answers 200 with new tokens', refreshed !== undefined);
    metrics.check(
      'the refresh grant rotates the refresh token',
      refreshed?.refresh_token !== undefined && refreshed.refresh_token !== tokens.refresh_token,
    );
    if (refreshed) metrics.add('auth_sign_in_duration', performance.now() - started);
  },
};
