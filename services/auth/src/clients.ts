/**
 * OAuth clients: the lookup the OAuth endpoints authenticate against, creation (public, or
 * confidential with a scrypt-hashed secret), and scope handling.
 */
import type { Queryable } from '@codelab/service-kit';

export type GrantType = 'password' | 'refresh_token' | 'client_credentials' | 'authorization_code';

/** The grants the token endpoint implements (and the metadata advertises). */
export const SUPPORTED_GRANT_TYPES = ['password', 'refresh_token', 'client_credentials'] as const satisfies readonly GrantType[];

/** The scopes the platform knows (the gateway enforces them); clients may only be given these. */
export const KNOWN_SCOPES = ['api:read', 'api:write', 'api:admin'] as const;

export interface OAuthClient {
  clientId: string;
  name: string;
  isConfidential: boolean;
  /** scrypt hash of the secret (confidential clients); undefined for public clients. */
  secretHash: string | undefined;
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
  client_secret_hash: string | null;
  allowed_scopes: string;
  allowed_grant_types: string[];
  access_token_lifetime: number | null;
  refresh_token_lifetime: number | null;
  is_active: boolean;
}

const COLUMNS = `client_id, name, is_confidential, client_secret_hash, allowed_scopes,
  allowed_grant_types, access_token_lifetime, refresh_token_lifetime, is_active`;

function toClient(row: ClientRow): OAuthClient {
  return {
    clientId: row.client_id,
    name: row.name,
    isConfidential: row.is_confidential,
    secretHash: row.client_secret_hash ?? undefined,
    allowedScopes: splitScope(row.allowed_scopes),
    allowedGrantTypes: row.allowed_grant_types,
    accessTokenLifetime: row.access_token_lifetime ?? undefined,
    refreshTokenLifetime: row.refresh_token_lifetime ?? undefined,
    isActive: row.is_active,
  };
}

export async function findClient(db: Queryable, clientId: string): Promise<OAuthClient | undefined> {
  const { rows } = await db.query<ClientRow>(`SELECT ${COLUMNS} FROM oauth_clients WHERE client_id = $1`, [clientId]);
  return rows[0] && toClient(rows[0]);
}

export async function listClients(db: Queryable): Promise<OAuthClient[]> {
  const { rows } = await db.query<ClientRow>(`SELECT ${COLUMNS} FROM oauth_clients ORDER BY client_id`);
  return rows.map(toClient);
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

/**
 * Creates a client: confidential when `secretHash` (from `hashPassword`) is given, public
 * otherwise. False when the client id is taken.
 */
export async function createClient(db: Queryable, client: NewClient & { secretHash?: string }): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO oauth_clients (client_id, name, is_confidential, client_secret_hash, allowed_scopes, allowed_grant_types,
                                access_token_lifetime, refresh_token_lifetime, is_active)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (client_id) DO NOTHING`,
    [
      client.clientId,
      client.name,
      client.secretHash !== undefined,
      client.secretHash ?? null,
      client.allowedScopes.join(' '),
      client.allowedGrantTypes,
      client.accessTokenLifetime ?? null,
      client.refreshTokenLifetime ?? null,
      client.isActive ?? true,
    ],
  );
  return rowCount === 1;
}

/** Creates a public client (no secret); false when the client id is taken. */
export function createPublicClient(db: Queryable, client: NewClient): Promise<boolean> {
  return createClient(db, client);
}

/** Turns a client on or off; false when there is no such client. */
export async function setClientActive(db: Queryable, clientId: string, active: boolean): Promise<boolean> {
  const { rowCount } = await db.query('UPDATE oauth_clients SET is_active = $2, updated_at = now() WHERE client_id = $1', [
    clientId,
    active,
  ]);
  return rowCount === 1;
}

/**
 * The scope of the platform's admin views. Admin is a property of the user: a user's token (password
 * and refresh grants) carries it only when the user is an admin; a client_credentials token carries
 * its client's scopes (no user is involved).
 */
export const ADMIN_SCOPE = 'api:admin';

/**
 * What a user's token may carry of a granted `scope`: everything, or everything but api:admin
 * unless `admin`. RFC 6749 §3.3 lets the server grant less than was requested (the answer's `scope`
 * says what was granted); `dropped` names what was removed.
 */
export function scopeForUser(scope: string, admin: boolean): { scope: string; dropped: string[] } {
  const tokens = splitScope(scope);
  if (admin || !tokens.includes(ADMIN_SCOPE)) return { scope, dropped: [] };
  return { scope: tokens.filter((t) => t !== ADMIN_SCOPE).join(' '), dropped: [ADMIN_SCOPE] };
}

/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

export function splitScope(scope: string): string[] {
  return scope.split(' ').filter(Boolean);
}

/**
 * The scope to grant: the allowed scopes when none is requested, else the requested scopes
 * (deduplicated, sorted) when all of them are allowed; undefined when they are not. `allowed` is
 * the client's scopes for a new grant, the original grant's scopes on refresh (which may only
 * narrow, RFC 6749 §6).
 */
export function grantedScope(requested: string | undefined, allowed: readonly string[]): string | undefined {
  if (requested === undefined || requested.trim() === '') return [...new Set(allowed)].sort().join(' ');
  const tokens = requested.split(/[ ]+/).filter(Boolean);
  if (!tokens.every((t) => SCOPE_TOKEN.test(t) && allowed.includes(t))) return undefined;
  return [...new Set(tokens)].sort().join(' ');
}
