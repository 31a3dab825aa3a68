/**
 * The bearer token of a run (api, chat): one password grant at setup, then refresh grants before
 * it expires (a soak outlives an access token). These requests are not part of the measured load.
 */
import type { Http } from '../http.ts';
import { SetupError, type ScenarioEnv } from './types.ts';

export const CLIENT_ID = 'codelab-flutter-app';

interface TokenAnswer {
  access_token?: string;
  refresh_token?: string;
  expires_in?: number;
  error?: string;
  error_description?: string;
}

export class TokenSource {
  private access = '';
  private refresh = '';
  private expiresAt = 0;
  private lifetimeMs = 0;
  private pending: Promise<void> | undefined;

  private readonly http: Http;
  private readonly authUrl: string;
  private readonly username: string;
  private readonly password: string;

  private constructor(http: Http, authUrl: string, username: string, password: string) {
    this.http = http;
    this.authUrl = authUrl;
    this.username = username;
    this.password = password;
  }

  /** Logs in with the password grant, or fails setup saying why. */
  static async login(env: ScenarioEnv): Promise<TokenSource> {
    if (!env.password) {
      throw new SetupError(
        `no password for ${env.username}: pass --password, set LOAD_PASSWORD, or run against the platform \`npm start\` made (its admin password is in data/auth/admin-password)`,
      );
    }
    const src = new TokenSource(env.http, env.targets.auth, env.username, env.password);
    await src.grant({ grant_type: 'password', client_id: CLIENT_ID, username: env.username, password: env.password }, env.passwordSource);
    return src;
  }

  private async grant(form: Record<string, string>, passwordSource?: string): Promise<void> {
    const res = await this.http.raw({
      name: 'setup token',
      method: 'POST',
      url: `${this.authUrl}/oauth/token`,
      body: new URLSearchParams(form),
      expect: [200],
    });
    const body = res.json<TokenAnswer>();
    if (!res.ok || !body?.access_token) {
      const why = res.error ?? `${res.status} ${body?.error ?? ''} ${body?.error_description ?? res.text.slice(0, 200)}`.trim();
      const hint =
        res.status === 401 && passwordSource
          ? ` (the password came from ${passwordSource})`
          : res.status === 429
            ? ' (the auth service rate-limits /oauth/token per address: start it with AUTH_SERVICE__ENABLE_RATE_LIMITING=false for load tests)'
            : '';
      throw new SetupError(`${form.grant_type} grant for ${this.username} at ${this.authUrl} failed: ${why}${hint}`);
    }
    this.access = body.access_token;
    if (body.refresh_token) this.refresh = body.refresh_token;
    this.lifetimeMs = (body.expires_in ?? 900) * 1000;
    this.expiresAt = Date.now() + this.lifetimeMs;
  }

  /** A valid access token: refreshed (once, whoever asks) when less than a fifth of its life is left. */
  async get(): Promise<string> {
    if (Date.now() < this.expiresAt - this.lifetimeMs / 5) return this.access;
    this.pending ??= (async () => {
      try {
        if (this.refresh) await this.grant({ grant_type: 'refresh_token', client_id: CLIENT_ID, refresh_token: this.refresh });
        else throw new Error('no refresh token');
      } catch {
        await this.grant({ grant_type: 'password', client_id: CLIENT_ID, username: this.username, password: this.password });
      }
    })().finally(() => (this.pending = undefined));
    await this.pending;
    return this.access;
  }
}

/** Fails setup unless `GET <url><readyPath>` (default `/ready`) answers 200 within a few seconds. */
export async function ensureReady(http: Http, service: string, url: string, readyPath: string, option: string): Promise<void> {
  const res = await http.raw({
    name: 'ready',
    url: `${url.replace(/\/$/, '')}${readyPath}`,
    expect: [200],
    signal: AbortSignal.timeout(5000),
  });
  if (res.ok) return;
  const why = res.error ? `unreachable (${res.error})` : `answered ${res.status} ${res.text.slice(0, 300)}`;
  throw new SetupError(
    `the ${service} at ${url} is not ready: GET ${readyPath} ${why}. Start the platform (npm start) or point ${option} at a running ${service}.`,
  );
}
