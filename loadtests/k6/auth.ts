/**
 * Signing in as the IDE does: an OAuth 2.0 password grant of the public codelab-flutter-app
 * client, then a refresh_token grant with the refresh token it got (each iteration its own login,
 * so no refresh token is ever used twice). The auth service limits token requests per address
 * (AUTH_SERVICE__RATE_LIMIT_PER_IP, 30 a minute): start it with AUTH_SERVICE__ENABLE_RATE_LIMITING=false
 * (or a limit above the profile's rate) or the limiter, not the service, is what gets measured.
 * `k6 run -e PASSWORD=… [-e USERNAME=admin] [-e PROFILE=smoke] loadtests/k6/auth.ts`
 */
// imports
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { credentials, passwordGrant, refreshGrant, tokenOf, type Credentials } from './lib/auth.ts';
import { buildOptions } from './lib/options.ts';
import { assertReady } from './lib/ready.ts';
import { summaryFor } from './lib/summary.ts';

// where the auth service listens
const AUTH_URL = __ENV.AUTH_URL || 'http://127.0.0.1:8003';

// load shape and thresholds (loadtests/lib/profiles.ts, loadtests/generated/thresholds.json)
export const options = buildOptions('auth');

// custom metrics (prefixed with the journey)
/** Password grant sent → refreshed tokens received. */
const signInDuration = new Trend('auth_sign_in_duration', true);

// setup: auth is up and the credentials work (a wrong password would only measure refusals)
export function setup(): Credentials {
  assertReady('auth', AUTH_URL);
  const creds = credentials();
  const res = passwordGrant(AUTH_URL, creds);
  if (!tokenOf(res))
    throw new Error(`login of ${creds.username} with client ${creds.clientId} failed: ${res.status} ${String(res.body).slice(0, 200)}`);
  return creds;
}

// what the user does
export function signIn(creds: Credentials): void {
  const started = Date.now();
  const login = passwordGrant(AUTH_URL, creds);
  const tokens = tokenOf(login);
  check(login, {
    'the password grant answers 200 with an access token': () => tokens !== undefined,
    'the password grant is not rate limited': (r) => r.status !== 429,
  });
  if (!tokens?.refresh_token) return;

  const refresh = refreshGrant(AUTH_URL, creds.clientId, tokens.refresh_token);
  const refreshed = tokenOf(refresh);
  check(refresh, {
    'the refresh grant answers 200 with new tokens': () => refreshed !== undefined,
    'the refresh grant rotates the refresh token': () =>
      refreshed?.refresh_token !== undefined && refreshed.refresh_token !== tokens.refresh_token,
  });
  if (refreshed) signInDuration.add(Date.now() - started);
}

// end-of-test summary
export const handleSummary = summaryFor('auth');
