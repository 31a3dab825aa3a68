/**
 * Seed data, applied at every start and idempotent by name (upstream §3.10 with fixes): the `admin`
 * user, created as an admin (its tokens may carry api:admin; the CLI's `set-admin` changes that and
 * the seed never changes it back), and the public `codelab-flutter-app` client, which may carry
 * api:admin for admin users only.
 *
 * The admin password is AUTH_SERVICE__MASTER_KEY, used only when the admin is created (an existing
 * admin keeps its password). Without a master key outside production a random password is written to
 * `${dataDir}/auth/admin-password` (mode 600) when the admin is created; only the file's path is
 * logged. In production an admin cannot be created without a master key.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Database } from '@codelab/service-kit';
import { createPublicClient, type NewClient } from './clients.ts';
import { createUser, findUserByLogin } from './users.ts';

export const DEFAULT_CLIENT: NewClient = {
  clientId: 'codelab-flutter-app',
  name: 'CodeLab Flutter Application',
  allowedScopes: ['api:read', 'api:write', 'api:admin'],
  allowedGrantTypes: ['password', 'refresh_token'],
  accessTokenLifetime: 900,
  refreshTokenLifetime: 2_592_000,
};

export interface SeedOptions {
  masterKey: string | undefined;
  environment: string;
  dataDir: string;
  logger: Logger;
  /** The seeded admin (tests pass their own). */
  admin?: { username: string; email: string };
}

export interface SeedResult {
  admin: { id: string; created: boolean; passwordFile: string | undefined };
}

export function adminPasswordFile(dataDir: string): string {
  return path.join(dataDir, 'auth', 'admin-password');
}

/** 24 characters from [A-Za-z0-9_-] (144 bits). */
function randomPassword(): string {
  return randomBytes(18).toString('base64url');
}

async function writeSecretFile(file: string, content: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${content}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
}

export async function seed(db: Database, opts: SeedOptions): Promise<SeedResult> {
  const { username, email } = opts.admin ?? { username: 'admin', email: 'admin@codelab.local' };
  const admin = await seedAdmin(db, opts, username, email);
  if (await createPublicClient(db, DEFAULT_CLIENT)) {
    opts.logger.info({ client_id: DEFAULT_CLIENT.clientId }, 'seeded OAuth client');
  }
  return { admin };
}

async function seedAdmin(db: Database, opts: SeedOptions, username: string, email: string): Promise<SeedResult['admin']> {
  const existing = await findUserByLogin(db, username);
  if (existing) return { id: existing.id, created: false, passwordFile: undefined };

  const masterKey = opts.masterKey || undefined;
  if (!masterKey && opts.environment === 'production') {
    throw new Error(
      `no '${username}' user exists and AUTH_SERVICE__MASTER_KEY is not set: in production the admin password must come from AUTH_SERVICE__MASTER_KEY`,
    );
  }
  const password = masterKey ?? randomPassword();
  const file = masterKey ? undefined : adminPasswordFile(opts.dataDir);
  // Created and (for a generated password) written together: a file that fails to write leaves no admin.
  const created = await db.transaction(async (tx) => {
    const user = await createUser(tx, { username, email, password, isActive: true, isVerified: true, isAdmin: true });
    if (user && file) await writeSecretFile(file, password);
    return user;
  });
  if (!created) {
    // Another instance created it meanwhile.
    const raced = await findUserByLogin(db, username);
    if (!raced) throw new Error(`cannot create the '${username}' user: its email ${email} belongs to another user`);
    return { id: raced.id, created: false, passwordFile: undefined };
  }
  if (file) opts.logger.warn({ username, password_file: file }, 'created the admin user with a generated password: read it from the file');
  else opts.logger.info({ username }, 'created the admin user with the password AUTH_SERVICE__MASTER_KEY');
  return { id: created.id, created: true, passwordFile: file };
}
