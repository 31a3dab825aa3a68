/**
 * Shared set-up of the gateway REST suites: the real stack (auth, runtime, llm-proxy, gateway on
 * loopback ports, the run's database), tokens for any user and scopes signed with the auth
 * service's own key, direct database access to insert rows where the runtime's turn engine would,
 * and a count of the calls the gateway made to the runtime (to prove refused input never left).
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeProtectedHeader, importPKCS8, SignJWT } from 'jose';
import pg from 'pg';
import { startStack, type Stack } from '../../../../test/helpers/stack.ts';

export interface RestStack {
  stack: Stack;
  gateway: string;
  db: pg.Pool;
  /** An access token for `sub` with these scopes (space-separated), signed by the stack's auth key. */
  token(sub: string, scope: string): Promise<string>;
  /** A fresh user with a token of these scopes. */
  user(scope?: string): Promise<{ sub: string; auth: { authorization: string } }>;
  /** Calls the gateway made to the runtime on this route template so far. */
  runtimeCalls(route: string): Promise<number>;
  close(): Promise<void>;
}

export async function startRestStack(databaseUrl: string): Promise<RestStack> {
  const stack = await startStack({ databaseUrl });
  const kid = decodeProtectedHeader(await stack.token()).kid!;
  const key = await importPKCS8(await readFile(path.join(stack.dataDir, 'auth', 'keys', 'private_key.pem'), 'utf8'), 'RS256');
  const db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const token = (sub: string, scope: string) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ sub, type: 'access', client_id: 'codelab-flutter-app', scope, jti: randomUUID() })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
      .setIssuer('https://auth.codelab.local')
      .setAudience('codelab-api')
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 600)
      .sign(key);
  };
  return {
    stack,
    gateway: stack.url.gateway,
    db,
    token,
    async user(scope = 'api:read api:write') {
      const sub = `user-${randomUUID()}`;
      return { sub, auth: { authorization: `Bearer ${await token(sub, scope)}` } };
    },
    async runtimeCalls(route: string) {
      const text = await (await fetch(`${stack.url.gateway}/metrics`)).text();
      let n = 0;
      for (const line of text.split('\n')) {
        if (
          line.startsWith('http_client_request_duration_seconds_count{') &&
          line.includes('peer="runtime"') &&
          line.includes(`route="${route}"`)
        ) {
          n += Number(line.slice(line.lastIndexOf(' ') + 1));
        }
      }
      return n;
    },
    async close() {
      await db.end();
      await stack.close();
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: any JSON body; each test reads the fields it checks
type JsonBody = any;

/** fetch() JSON with a method, headers and optional body; answers status and parsed body. */
export async function call(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<{ status: number; body: JsonBody; headers: Headers }> {
  const res = await fetch(url, {
    method: opts.method ?? 'GET',
    headers: { ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** Creates a session as the user through the gateway; returns its id. */
export async function createSession(gateway: string, auth: Record<string, string>): Promise<string> {
  const id = `gw-${randomUUID()}`;
  const res = await call(`${gateway}/api/v1/sessions`, { method: 'POST', headers: auth, body: { session_id: id } });
  if (res.status !== 201) throw new Error(`session creation answered ${res.status}: ${JSON.stringify(res.body)}`);
  return id;
}
