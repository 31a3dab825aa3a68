/**
 * JSON over HTTP. `gatewayJson` calls the gateway with the bearer token and, on a 401, refreshes the
 * token and tries once more. Errors become ApiError with the server's message, whichever of the
 * platform's error shapes it used.
 */
import { freshAccessToken, refreshNow } from '../auth/auth-session.ts';
import { config } from '../config.ts';

class ApiError extends Error {
  readonly status: number;
  readonly code: string | undefined;

  constructor(status: number, message: string, code?: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

type ErrorBody = {
  error?: string | { code?: string; message?: string };
  error_description?: string;
  detail?: unknown;
  message?: string;
};

async function errorOf(res: Response): Promise<ApiError> {
  const body = (await res.json().catch(() => ({}))) as ErrorBody;
  const nested = typeof body.error === 'object' ? body.error : undefined;
  const message =
    nested?.message ??
    body.error_description ??
    (typeof body.detail === 'string' ? body.detail : undefined) ??
    body.message ??
    (typeof body.error === 'string' ? body.error : undefined) ??
    `HTTP ${res.status}`;
  return new ApiError(res.status, message, nested?.code);
}

async function send(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch {
    throw new ApiError(0, `${new URL(url).host} cannot be reached`);
  }
}

/** A public JSON endpoint (the web server's own routes). */
export async function publicJson<T>(path: string): Promise<T> {
  const res = await send(new URL(path, window.location.origin).href, { headers: { accept: 'application/json' } });
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

/** A public text resource (the docs' Markdown). */
export async function publicText(path: string): Promise<string> {
  const res = await send(new URL(path, window.location.origin).href, {});
  if (!res.ok) throw await errorOf(res);
  return res.text();
}

/** The gateway's REST API, authorized; one retry with a refreshed token after a 401. */
export async function gatewayJson<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const url = `${config().gatewayUrl}${path}`;
  const attempt = (token: string) =>
    send(url, {
      method: init.method ?? 'GET',
      headers: {
        accept: 'application/json',
        authorization: `Bearer ${token}`,
        ...(init.body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
    });
  const token = await freshAccessToken();
  if (!token) throw new ApiError(401, 'You are signed out.');
  let res = await attempt(token);
  if (res.status === 401) {
    const renewed = await refreshNow();
    if (!renewed) throw new ApiError(401, 'Your session has ended: sign in again.');
    res = await attempt(renewed);
  }
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}
