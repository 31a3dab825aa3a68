/**
 * Client authentication at the OAuth endpoints (RFC 6749 §2.3):
 *
 * - `client_secret_basic`: `Authorization: Basic base64(urlencode(id):urlencode(secret))`
 *   (§2.3.1: both parts form-url-encoded before base64);
 * - `client_secret_post`: `client_id` and `client_secret` in the form body;
 * - `none`: a public client sends `client_id` alone.
 *
 * Using Basic and `client_secret` together is invalid_request (§2.3: one method per request). An
 * `Authorization` header with another scheme (a bearer token some HTTP stacks attach to every
 * call) is ignored, as upstream ignored the header altogether. An empty secret counts as none
 * (§2.3.1: "MAY omit the parameter if the client secret is an empty string").
 *
 * Secrets are scrypt hashes (passwords.ts) compared in constant time, and a secret presented for an
 * unknown or public client is checked against a dummy hash: every secret-bearing attempt costs one
 * scrypt, whatever the outcome.
 */
import type { Queryable } from '@codelab/service-kit';
import { findClient, type OAuthClient } from './clients.ts';
import { oauthErrors } from './errors.ts';
import type { FormBody } from './form-body.ts';
import { verifyDummy, verifyPassword } from './passwords.ts';

type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none';

export interface PresentedClient {
  clientId: string;
  /** undefined: the client presented no secret (method `none`). */
  secret: string | undefined;
  method: ClientAuthMethod;
}

type ClientAuthFailure = 'unknown_client' | 'inactive_client' | 'wrong_secret' | 'secret_required' | 'secret_from_public_client';

export type ClientAuthResult = { ok: true; client: OAuthClient } | { ok: false; reason: ClientAuthFailure };

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** application/x-www-form-urlencoded decoding of one Basic credential part; undefined when malformed. */
function formDecode(part: string): string | undefined {
  try {
    return decodeURIComponent(part.replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

function parseBasic(credentials: string): { id: string; secret: string } | undefined {
  if (!BASE64.test(credentials)) return undefined;
  const decoded = Buffer.from(credentials, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const id = formDecode(decoded.slice(0, colon));
  const secret = formDecode(decoded.slice(colon + 1));
  return id && secret !== undefined ? { id, secret } : undefined;
}

/** Which client the request claims to be, and with what proof; throws invalid_request / invalid_client. */
export function readClientCredentials(authorization: string | undefined, form: FormBody): PresentedClient {
  const basic = /^basic(?:\s+(.*))?$/is.exec(authorization?.trim() ?? '');
  if (basic) {
    const parsed = parseBasic(basic[1]?.trim() ?? '');
    if (!parsed) throw oauthErrors.invalid_client('Malformed HTTP Basic client credentials');
    if (form.client_secret !== undefined) {
      throw oauthErrors.invalid_request('Use one client authentication method: HTTP Basic or client_secret in the body, not both');
    }
    if (form.client_id !== undefined && form.client_id !== parsed.id) {
      throw oauthErrors.invalid_request('client_id in the body does not match the HTTP Basic credentials');
    }
    return { clientId: parsed.id, secret: parsed.secret === '' ? undefined : parsed.secret, method: 'client_secret_basic' };
  }
  if (!form.client_id) throw oauthErrors.invalid_request('Missing required parameter: client_id');
  if (form.client_secret) return { clientId: form.client_id, secret: form.client_secret, method: 'client_secret_post' };
  return { clientId: form.client_id, secret: undefined, method: 'none' };
}

/** Checks the presented credentials against the client's row. */
export async function authenticateClient(db: Queryable, presented: PresentedClient): Promise<ClientAuthResult> {
  const client = await findClient(db, presented.clientId);
  if (presented.secret !== undefined) {
    const valid = client?.secretHash ? await verifyPassword(presented.secret, client.secretHash) : await verifyDummy(presented.secret);
    if (!client) return { ok: false, reason: 'unknown_client' };
    if (!client.isConfidential) return { ok: false, reason: 'secret_from_public_client' };
    if (!valid) return { ok: false, reason: 'wrong_secret' };
    if (!client.isActive) return { ok: false, reason: 'inactive_client' };
    return { ok: true, client };
  }
  if (!client) return { ok: false, reason: 'unknown_client' };
  if (client.isConfidential) return { ok: false, reason: 'secret_required' };
  if (!client.isActive) return { ok: false, reason: 'inactive_client' };
  return { ok: true, client };
}
