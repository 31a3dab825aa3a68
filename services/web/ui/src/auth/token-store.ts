/**
 * The signed-in user's tokens, in memory only: never localStorage, sessionStorage, cookies or the
 * URL, so that no script or later visitor finds them. A reload therefore signs out (intended).
 */
export interface Tokens {
  accessToken: string;
  refreshToken: string | undefined;
  /** Granted scopes (the token endpoint's `scope`, split on spaces). */
  scopes: string[];
  /** Epoch ms when the access token expires. */
  expiresAt: number;
  username: string;
}

let current: Tokens | undefined;
const listeners = new Set<() => void>();

export function currentTokens(): Tokens | undefined {
  return current;
}

export function setTokens(tokens: Tokens | undefined): void {
  current = tokens;
  for (const listener of listeners) listener();
}

/** Calls `listener` after each change; returns the unsubscribe function. */
export function onTokensChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function isAdmin(tokens: Tokens | undefined): boolean {
  return Boolean(tokens?.scopes.includes('api:admin'));
}
