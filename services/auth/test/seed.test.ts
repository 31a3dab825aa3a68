import { readFile, stat, writeFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '@codelab/service-kit';
import { capturingLogger, silentLogger } from '@codelab/service-kit/testing';
import { findClient } from '../src/clients.ts';
import { verifyPassword } from '../src/passwords.ts';
import { adminPasswordFile, DEFAULT_CLIENT, seed, type SeedOptions } from '../src/seed.ts';
import { findUserByLogin, setUserAdmin } from '../src/users.ts';
import { openTestDatabase, tempDir, uniqueName } from './helpers.ts';

describe('seed', () => {
  let db: Database;
  let dataDir: string;
  let remove: () => Promise<void>;

  beforeAll(async () => {
    db = await openTestDatabase();
  });
  afterAll(() => db.close());
  beforeEach(async () => {
    ({ dir: dataDir, remove } = await tempDir());
  });
  afterEach(() => remove());

  /** Seeding options for an admin of its own (the real `admin` belongs to the whole shared database). */
  const options = (overrides: Partial<SeedOptions> = {}): SeedOptions => {
    const username = uniqueName('admin');
    return {
      masterKey: undefined,
      environment: 'development',
      dataDir,
      logger: silentLogger(),
      admin: { username, email: `${username}@codelab.test` },
      ...overrides,
    };
  };

  it('creates the admin with the master key, then never changes its password', async () => {
    const opts = options({ masterKey: 'first-master-key' });
    const first = await seed(db, opts);
    expect(first.admin).toMatchObject({ created: true, passwordFile: undefined });
    const admin = await findUserByLogin(db, opts.admin!.username);
    expect(admin).toMatchObject({ id: first.admin.id, email: opts.admin!.email, isActive: true, isVerified: true, isAdmin: true });
    expect(await verifyPassword('first-master-key', admin!.passwordHash)).toBe(true);

    const second = await seed(db, { ...opts, masterKey: 'second-master-key' });
    expect(second.admin).toEqual({ id: first.admin.id, created: false, passwordFile: undefined });
    expect((await findUserByLogin(db, opts.admin!.username))!.passwordHash).toBe(admin!.passwordHash);
  });

  it('without a master key writes a generated password to a private file, only when it creates the admin', async () => {
    const { logger, lines } = capturingLogger();
    const opts = options({ logger });
    const first = await seed(db, opts);
    const file = adminPasswordFile(dataDir);
    expect(first.admin).toMatchObject({ created: true, passwordFile: file });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const password = (await readFile(file, 'utf8')).trim();
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    const admin = await findUserByLogin(db, opts.admin!.username);
    expect(await verifyPassword(password, admin!.passwordHash)).toBe(true);
    // The path is logged, the password never.
    const log = JSON.stringify(lines());
    expect(log).toContain(file);
    expect(log).not.toContain(password);

    await writeFile(file, 'kept\n');
    const second = await seed(db, opts);
    expect(second.admin.created).toBe(false);
    expect(await readFile(file, 'utf8')).toBe('kept\n');
  });

  it('refuses to create an admin without a master key in production', async () => {
    await expect(seed(db, options({ environment: 'production' }))).rejects.toThrow(/AUTH_SERVICE__MASTER_KEY is not set/);
  });

  it('starts in production without a master key once the admin exists', async () => {
    const opts = options({ masterKey: 'm' });
    await seed(db, opts);
    await expect(seed(db, { ...opts, masterKey: undefined, environment: 'production' })).resolves.toMatchObject({
      admin: { created: false },
    });
  });

  it('never gives the admin role back to an admin demoted since', async () => {
    const opts = options({ masterKey: 'm' });
    const { admin } = await seed(db, opts);
    await setUserAdmin(db, admin.id, false);
    await seed(db, opts);
    expect((await findUserByLogin(db, opts.admin!.username))!.isAdmin).toBe(false);
  });

  it('seeds the public codelab-flutter-app client', async () => {
    await seed(db, options({ masterKey: 'm' }));
    const client = await findClient(db, DEFAULT_CLIENT.clientId);
    expect(client).toEqual({
      clientId: 'codelab-flutter-app',
      name: 'CodeLab Flutter Application',
      isConfidential: false,
      // api:admin for admin users only (the role is the user's)
      allowedScopes: ['api:read', 'api:write', 'api:admin'],
      allowedGrantTypes: ['password', 'refresh_token'],
      accessTokenLifetime: 900,
      refreshTokenLifetime: 2_592_000,
      isActive: true,
    });
  });
});
