/**
 * OAuth clients: the lookup the token endpoint authenticates against, and scope handling.
 */
import type { Queryable } from '@codelab/service-kit/db';

export type GrantType = 'password' | 'refresh_token' | 'client_credentials' | 'authorization_code';

export interface OAuthClient {
  clientId: string;
  name: string;
  isConfidential: boolean;
  allowedScopes: string[];
  allowedGrantTypes: string[];
  /** Seconds; undefined means the service default. */
  accessTokenLifetime: number | undefined;
  refreshTokenLifetime: number | undefined;
  isActive: boolean;
}

interface ClientRow {
  client_id: string;
  name: string;
  is_confidential: boolean;
  allowed_scopes: string;
  allowed_grant_types: string[];
  access_token_lifetime: number | null;
  refresh_token_lifetime: number | null;
  is_active: boolean;
}

export async function findClient(db: Queryable, clientId: string): Promise<OAuthClient | undefined> {
  const { rows } = await db.query<ClientRow>(
    `SELECT client_id, name, is_confidential, allowed_scopes,
            allowed_grant_types, access_token_lifetime, refresh_token_lifetime, is_active
       FROM oauth_clients WHERE client_id = $1`,
    [clientId],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    clientId: row.client_id,
    name: row.name,
    isConfidential: row.is_confidential,
    allowedScopes: splitScope(row.allowed_scopes),
    allowedGrantTypes: row.allowed_grant_types,
    accessTokenLifetime: row.access_token_lifetime ?? undefined,
    refreshTokenLifetime: row.refresh_token_lifetime ?? undefined,
    isActive: row.is_active,
  };
}

export interface NewClient {
  clientId: string;
  name: string;
  allowedScopes: string[];
  allowedGrantTypes: GrantType[];
  accessTokenLifetime?: number;
  refreshTokenLifetime?: number;
  isActive?: boolean;
}

/** Creates a public client (no secret); false when the client id is taken. */
export async function createPublicClient(db: Queryable, client: NewClient): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO oauth_clients (client_id, name, is_confidential, allowed_scopes, allowed_grant_types,
                                access_token_lifetime, refresh_token_lifetime, is_active)
     VALUES ($1, $2, false, $3, $4, $5, $6, $7)
     ON CONFLICT (client_id) DO NOTHING`,
    [
      client.clientId,
      client.name,
      client.allowedScopes.join(' '),
      client.allowedGrantTypes,
      client.accessTokenLifetime ?? null,
      client.refreshTokenLifetime ?? null,
      client.isActive ?? true,
    ],
  );
  return rowCount === 1;
}

/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

export function splitScope(scope: string): string[] {
  return scope.split(' ').filter(Boolean);
}

/**
 * The scope to grant: the client's allowed scopes when none is requested, else the requested
 * scopes (deduplicated, sorted) when all of them are allowed; undefined when they are not.
 */
export function grantedScope(requested: string | undefined, allowed: readonly string[]): string | undefined {
  if (requested === undefined || requested.trim() === '') return [...new Set(allowed)].sort().join(' ');
  const tokens = requested.split(/[ ]+/).filter(Boolean);
  if (!tokens.every((t) => SCOPE_TOKEN.test(t) && allowed.includes(t))) return undefined;
  return [...new Set(tokens)].sort().join(' ');
}
