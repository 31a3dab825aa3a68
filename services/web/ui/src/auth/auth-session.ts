/**
 * Signing in and out, and keeping the access token fresh: a refresh shortly before it expires, and
 * on demand after a 401. One refresh at a time: auth rotates refresh tokens, so a second refresh
 * with the same (now spent) token would be refused and sign the user out.
 */
import { type TokenAnswer, passwordGrant, refreshGrant, revokeRefreshToken } from './oauth-client.ts';
import { currentTokens, setTokens } from './token-store.ts';

/** Refresh this long before expiry (or at 80 % of a shorter lifetime). */
const REFRESH_MARGIN_MS = 60_000;

let refreshTimer: ReturnType<typeof setTimeout> | undefined;
let refreshing: Promise<string | undefined> | undefined;

function store(answer: TokenAnswer, username: string, previousRefresh?: string): void {
  const lifetimeMs = Math.max(answer.expires_in, 1) * 1000;
  setTokens({
    accessToken: answer.access_token,
    // rotation: the new refresh token replaces the old one (kept only if none came back)
    refreshToken: answer.refresh_token ?? previousRefresh,
    scopes: (answer.scope ?? '').split(' ').filter(Boolean),
    expiresAt: Date.now() + lifetimeMs,
    username,
  });
  clearTimeout(refreshTimer);
  const delay = Math.max(lifetimeMs - Math.min(REFRESH_MARGIN_MS, lifetimeMs * 0.2), 1000);
  refreshTimer = setTimeout(() => void refreshNow(), delay);
}

export async function signIn(username: string, password: string): Promise<void> {
  const answer = await passwordGrant(username, password);
  store(answer, username);
}

export async function signOut(): Promise<void> {
  const refreshToken = currentTokens()?.refreshToken;
  forget();
  if (refreshToken) await revokeRefreshToken(refreshToken);
}

function forget(): void {
  clearTimeout(refreshTimer);
  refreshTimer = undefined;
  setTokens(undefined);
}

/**
 * Refreshes the access token (once, however many callers ask meanwhile); answers the new access
 * token, or undefined when the session is over (no refresh token, or auth refused it: signed out).
 */
export function refreshNow(): Promise<string | undefined> {
  refreshing ??= (async () => {
    const tokens = currentTokens();
    if (!tokens?.refreshToken) {
      forget();
      return undefined;
    }
    try {
      const answer = await refreshGrant(tokens.refreshToken);
      if (currentTokens() !== tokens) return currentTokens()?.accessToken; // signed out (or in again) meanwhile
      store(answer, tokens.username, tokens.refreshToken);
      return currentTokens()?.accessToken;
    } catch (err) {
      // a refused refresh token ends the session; a network failure keeps it for a later try
      if ((err as { status?: number }).status !== 0 && currentTokens() === tokens) forget();
      return undefined;
    }
  })().finally(() => {
    refreshing = undefined;
  });
  return refreshing;
}

/** An access token valid for a while yet (refreshed first when it is about to expire). */
export async function freshAccessToken(): Promise<string | undefined> {
  const tokens = currentTokens();
  if (!tokens) return undefined;
  if (tokens.expiresAt - Date.now() > 10_000) return tokens.accessToken;
  return refreshNow();
}
