/**
 * The CLI as operators run it: `node services/auth/src/cli.ts …` as a child process,
 * against the run's database. The tables of input errors go through `runCli` in this process (the
 * same code the process runs, without a process start per case).
 */
import { spawn } from 'node:child_process';
import { cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { embeddedLockFile, openEmbeddedDatabase, readEmbeddedLock, startEmbeddedPostgres, type Database } from '@codelab/service-kit';
import { runCli } from '../src/cli.ts';
import { findClient } from '../src/clients.ts';
import { verifyPassword } from '../src/passwords.ts';
import { findUserByUsername } from '../src/users.ts';
import { newClient, newUser, openTestDatabase, tempDir, uniqueName } from './helpers.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = 'services/auth/src/cli.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      NO_COLOR: '1',
      AUTH_SERVICE__DB_URL: inject('databaseUrl'),
      ...opts.env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(opts.stdin ?? '');
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** The same invocation in this process. */
async function cliInProcess(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    readStdin: async () => opts.stdin ?? '',
    env: { AUTH_SERVICE__DB_URL: inject('databaseUrl'), ...opts.env },
  });
  return { code, stdout, stderr };
}

const generated = (out: string, label: string): string => new RegExp(`^${label} \\(shown once\\): (\\S+)$`, 'm').exec(out)?.[1] ?? '';

describe('auth CLI', () => {
  let db: Database;
  beforeAll(async () => {
    db = await openTestDatabase();
  });
  afterAll(() => db.close());

  async function liveTokenOf(userId: string, clientId?: string): Promise<string> {
    clientId ??= (await newClient(db, { confidential: false })).clientId;
    const jtiHash = uniqueName('jti').padEnd(64, '0');
    await db.query(`INSERT INTO refresh_tokens (jti_hash, user_id, client_id, expires_at) VALUES ($1, $2, $3, now() + interval '1 day')`, [
      jtiHash,
      userId,
      clientId,
    ]);
    return jtiHash;
  }
  const isRevoked = async (jtiHash: string) =>
    (await db.query<{ revoked: boolean }>('SELECT revoked FROM refresh_tokens WHERE jti_hash = $1', [jtiHash])).rows[0]?.revoked;

  describe('usage', () => {
    it('prints the commands on --help (exit 0), and on no command or an unknown one (exit 1)', async () => {
      const help = await cli(['--help']);
      const [none, unknown, badOption, commandHelp] = await Promise.all([
        cliInProcess([]),
        cliInProcess(['drop-database']),
        cli(['list-users', '--verbose']),
        cliInProcess(['create-user', '--help']),
      ]);
      expect(help.code).toBe(0);
      for (const command of [
        'create-user',
        'reset-password',
        'disable-user',
        'enable-user',
        'set-admin',
        'create-client',
        'disable-client',
        'list-users',
        'list-clients',
      ]) {
        expect(help.stdout).toContain(command);
      }
      expect(none.code).toBe(1);
      expect(none.stderr).toContain('usage: npm run auth -- <command>');
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain("unknown command 'drop-database'");
      expect(badOption.code).toBe(1);
      expect(badOption.stderr).toContain("Unknown option '--verbose'");
      expect(commandHelp.code).toBe(0);
      expect(commandHelp.stdout).toContain('create-user --username NAME --email EMAIL');
    });

    it('exits 1 naming a bad setting, and 2 when the database cannot be reached', async () => {
      const [badConfig, noDatabase] = await Promise.all([
        cli(['list-users'], { env: { AUTH_SERVICE__DB_URL: 'mysql://root:hunter2@db/auth' } }),
        cli(['list-users'], { env: { AUTH_SERVICE__DB_URL: 'postgres://postgres@127.0.0.1:1/none' } }),
      ]);
      expect(badConfig.code).toBe(1);
      expect(badConfig.stderr).toContain('AUTH_SERVICE__DB_URL=(value hidden) is invalid');
      expect(badConfig.stderr).not.toContain('hunter2');
      expect(noDatabase.code).toBe(2);
      expect(noDatabase.stderr).toMatch(/^auth: list-users failed: .*ECONNREFUSED/m);
    });
  });

  // Regression: the CLI opened data/auth/pg while `npm start` serves data/pg, so what it created
  // never reached the running platform (its client answered invalid_client, its list had no admin).
  describe("the database it acts on (the platform's, said on stderr)", () => {
    const embeddedEnv = (dataDir: string) => ({ AUTH_SERVICE__DB_URL: '', CODELAB_DATA_DIR: dataDir });
    // An embedded database initialized once (initdb is most of an engine's start), copied into each test's data directory.
    let template: Awaited<ReturnType<typeof tempDir>>;
    beforeAll(async () => {
      template = await tempDir();
      await (await startEmbeddedPostgres(path.join(template.dir, 'pg'), 2)).stop();
    });
    afterAll(() => template.remove());
    const tempDataDir = async () => {
      const tmp = await tempDir();
      await cp(path.join(template.dir, 'pg'), path.join(tmp.dir, 'pg'), { recursive: true });
      return tmp;
    };

    it('is AUTH_SERVICE__DB_URL when set, named without its password', async () => {
      const run = await cliInProcess(['list-users'], { env: { AUTH_SERVICE__DB_URL: 'postgres://app:hunter2@127.0.0.1:1/auth' } });
      expect(run.code).toBe(2);
      expect(run.stderr.split('\n')[0]).toBe('auth: using the database of AUTH_SERVICE__DB_URL, postgres://app:***@127.0.0.1:1/auth');
      expect(run.stderr).not.toContain('hunter2');
    });

    it("is the running platform's embedded database, reached through the URL in its lock", async () => {
      const tmp = await tempDataDir();
      const platform = await openEmbeddedDatabase(path.join(tmp.dir, 'pg'), { holder: 'platform', share: true, maxConnections: 20 });
      try {
        const clientId = uniqueName('cli-running');
        const run = await cli(
          [
            'create-client',
            '--client-id',
            clientId,
            '--name',
            'Bot',
            '--scopes',
            'api:read',
            '--grants',
            'client_credentials',
            '--confidential',
          ],
          {
            env: embeddedEnv(tmp.dir),
          },
        );
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toBe(
          `auth: using the embedded database of the running platform (pid ${process.pid}, ${path.join(tmp.dir, 'pg')})\n`,
        );
        // The platform's engine has it, and still serves (the CLI stopped nothing).
        const platformDb = new pg.Client({ connectionString: platform.url });
        await platformDb.connect();
        try {
          const { rows } = await platformDb.query('SELECT is_confidential FROM oauth_clients WHERE client_id = $1', [clientId]);
          expect(rows).toEqual([{ is_confidential: true }]);
        } finally {
          await platformDb.end();
        }
        expect(await readEmbeddedLock(embeddedLockFile(platform.dir))).toMatchObject({
          pid: process.pid,
          holder: 'platform',
          state: 'serving',
        });
      } finally {
        await platform.stop();
        await tmp.remove();
      }
    });

    it('is opened by the CLI itself when the platform is not running, and left to the platform afterwards', async () => {
      const tmp = await tempDataDir();
      try {
        const username = uniqueName('cli-offline');
        const run = await cli(['create-user', '--username', username, '--email', `${username}@example.test`, '--admin'], {
          env: embeddedEnv(tmp.dir),
        });
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toBe(`auth: embedded database in ${path.join(tmp.dir, 'pg')} (the platform is not running)\n`);
        expect(await readEmbeddedLock(embeddedLockFile(path.join(tmp.dir, 'pg')))).toBeUndefined();

        // What the platform then serves is what the CLI wrote.
        const platform = await openEmbeddedDatabase(path.join(tmp.dir, 'pg'), { holder: 'platform', share: true, maxConnections: 20 });
        try {
          const list = await cli(['list-users'], { env: embeddedEnv(tmp.dir) });
          expect(list.stderr).toContain('of the running platform');
          expect(list.stdout).toMatch(new RegExp(`^${username}\\s+${username}@example.test\\s+yes\\s+yes\\s+no\\s`, 'm'));
        } finally {
          await platform.stop();
        }
      } finally {
        await tmp.remove();
      }
    });

    it('takes over the lock of a process that is gone', async () => {
      const tmp = await tempDataDir();
      try {
        const gone = spawn(process.execPath, ['-e', '']);
        await new Promise((resolve) => gone.once('exit', resolve));
        await writeFile(
          path.join(tmp.dir, 'pg.lock'),
          `${JSON.stringify({ pid: gone.pid, holder: 'platform', state: 'serving', url: 'postgres://postgres@127.0.0.1:1/postgres' })}\n`,
        );
        const run = await cli(['list-users'], { env: embeddedEnv(tmp.dir) });
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toContain('(the platform is not running)');
      } finally {
        await tmp.remove();
      }
    });

    it('is refused, naming the holder, while another command keeps the embedded database to itself', async () => {
      const tmp = await tempDataDir();
      try {
        const other = await openEmbeddedDatabase(path.join(tmp.dir, 'pg'), { holder: 'auth CLI', share: false, maxConnections: 4 });
        try {
          const run = await cli(['list-users'], { env: embeddedEnv(tmp.dir) });
          expect(run.code).toBe(2);
          expect(run.stderr).toContain(
            `is in use by the auth CLI (pid ${process.pid}), which keeps it to itself: try again when it has finished`,
          );
        } finally {
          await other.stop();
        }
      } finally {
        await tmp.remove();
      }
    });
  });

  describe('users', () => {
    it('create-user generates a password, prints it once, and the user can log in with it', async () => {
      const username = uniqueName('cli-user');
      const run = await cli(['create-user', '--username', username, '--email', `${username}@example.test`]);
      expect(run).toMatchObject({
        code: 0,
        stderr: expect.stringMatching(/^auth: using the database of AUTH_SERVICE__DB_URL, postgres:\/\/\S+\n$/),
      });
      expect(run.stdout).toMatch(new RegExp(`^created user ${username} \\([0-9a-f-]{36}\\)$`, 'm'));
      const password = generated(run.stdout, 'password');
      expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
      const user = await findUserByUsername(db, username);
      expect(user).toMatchObject({ email: `${username}@example.test`, isActive: true });
      expect(await verifyPassword(password, user!.passwordHash)).toBe(true);
    });

    it('create-user takes the password from stdin', async () => {
      const username = uniqueName('cli-stdin');
      const run = await cli(['create-user', '--username', username, '--email', `${username}@example.test`, '--password-stdin'], {
        stdin: 'a long enough password\n',
      });
      expect(run.code).toBe(0);
      expect(run.stdout).not.toContain('shown once');
      expect(await verifyPassword('a long enough password', (await findUserByUsername(db, username))!.passwordHash)).toBe(true);
    });

    it('create-user validates its input, naming the problem (exit 1)', async () => {
      const name = uniqueName('cli-bad');
      const email = `${name}@example.test`;
      const cases: [string[], string, string?][] = [
        [['--username', 'ab', '--email', email], "invalid --username 'ab'"],
        [['--username', 'has space', '--email', email], "invalid --username 'has space'"],
        [['--username', 'x'.repeat(65), '--email', email], 'invalid --username'],
        [['--username', name, '--email', 'not-an-email'], "invalid --email 'not-an-email'"],
        [['--username', name], '--email is required'],
        [['--username', name, '--email', email, '--password', 'short'], 'the password is too short: at least 12 characters (got 5)'],
        [['--username', name, '--email', email, '--password-stdin'], 'the password is too short', 'tiny\n'],
        [
          ['--username', name, '--email', email, '--password', 'long enough password', '--password-stdin'],
          'use --password or --password-stdin, not both',
        ],
      ];
      const runs = await Promise.all(cases.map(([args, , stdin]) => cliInProcess(['create-user', ...args], stdin ? { stdin } : {})));
      runs.forEach((run, i) => {
        expect(run.code, cases[i]![1]).toBe(1);
        expect(run.stderr).toContain(cases[i]![1]);
      });
      expect(await findUserByUsername(db, name)).toBeUndefined();
    });

    it('create-user refuses a taken username or email, ignoring case', async () => {
      const user = await newUser(db);
      const [sameName, sameEmail] = await Promise.all([
        cli(['create-user', '--username', user.username.toUpperCase(), '--email', `${uniqueName('x')}@example.test`]),
        cliInProcess(['create-user', '--username', uniqueName('other'), '--email', user.email.toUpperCase()]),
      ]);
      for (const run of [sameName, sameEmail]) {
        expect(run.code).toBe(1);
        expect(run.stderr).toContain('is already taken');
      }
    });

    it("reset-password sets a new password and revokes the user's refresh tokens", async () => {
      const user = await newUser(db);
      const token = await liveTokenOf(user.id);
      const run = await cli(['reset-password', '--username', user.username]);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`password of ${user.username} reset; 1 refresh token(s) revoked`);
      const password = generated(run.stdout, 'password');
      expect(await verifyPassword(password, (await findUserByUsername(db, user.username))!.passwordHash)).toBe(true);
      expect(await isRevoked(token)).toBe(true);
    });

    it('disable-user refuses the user and revokes its tokens; enable-user lets it back', async () => {
      const user = await newUser(db);
      const token = await liveTokenOf(user.id);
      const disabled = await cli(['disable-user', '--username', user.username]);
      expect(disabled.code).toBe(0);
      expect(disabled.stdout).toContain(`disabled user ${user.username}; 1 refresh token(s) revoked`);
      expect((await findUserByUsername(db, user.username))!.isActive).toBe(false);
      expect(await isRevoked(token)).toBe(true);

      expect((await cli(['enable-user', '--username', user.username])).code).toBe(0);
      expect((await findUserByUsername(db, user.username))!.isActive).toBe(true);
    });

    it('create-user --admin makes an admin; set-admin grants and --revoke removes the role; list-users shows it', async () => {
      const username = uniqueName('cli-admin');
      const created = await cli(['create-user', '--username', username, '--email', `${username}@example.test`, '--admin']);
      expect(created.code).toBe(0);
      expect(created.stdout).toMatch(new RegExp(`^created admin user ${username} \\(`, 'm'));
      expect((await findUserByUsername(db, username))!.isAdmin).toBe(true);

      const user = await newUser(db);
      const admin = (u: string) => findUserByUsername(db, u).then((x) => x!.isAdmin);
      const granted = await cli(['set-admin', '--username', user.username]);
      expect(granted).toMatchObject({ code: 0, stdout: `${user.username} is now an admin: a login asking for api:admin gets it\n` });
      expect(await admin(user.username)).toBe(true);
      expect((await cliInProcess(['set-admin', '--username', user.username])).stdout).toBe(
        `${user.username} is already an admin: nothing to do\n`,
      );
      const list = await cli(['list-users']);
      expect(list.stdout).toMatch(new RegExp(`^${user.username}\\s+${user.email}\\s+yes\\s+yes\\s`, 'm'));

      const revoked = await cli(['set-admin', '--username', user.username.toUpperCase(), '--revoke']);
      expect(revoked.code).toBe(0);
      expect(revoked.stdout).toContain(`${user.username} is no longer an admin: its tokens lose api:admin at their next refresh`);
      expect(await admin(user.username)).toBe(false);
      expect((await cliInProcess(['set-admin', '--username', user.username, '--revoke'])).stdout).toBe(
        `${user.username} is not an admin: nothing to do\n`,
      );
    });

    it('set-admin validates its input (exit 1)', async () => {
      const [missing, badOption] = await Promise.all([
        cliInProcess(['set-admin']),
        cliInProcess(['set-admin', '--username', 'x', '--revoke=yes']),
      ]);
      expect(missing).toMatchObject({ code: 1, stderr: 'auth: --username is required\n' });
      expect(badOption.code).toBe(1);
      expect(badOption.stderr).toContain("--revoke' does not take an argument");
    });

    it('answers exit 1 for an unknown user', async () => {
      const ghost = uniqueName('ghost');
      const runs = await Promise.all(
        ['reset-password', 'disable-user', 'enable-user', 'set-admin'].map((c) => cliInProcess([c, '--username', ghost])),
      );
      for (const run of runs) {
        expect(run.code).toBe(1);
        expect(run.stderr).toContain(`no user '${ghost}'`);
      }
    });

    it('list-users shows the users', async () => {
      const user = await newUser(db);
      const run = await cli(['list-users']);
      expect(run.code).toBe(0);
      expect(run.stdout.split('\n')[0]).toMatch(/^USERNAME\s+EMAIL\s+ADMIN\s+ACTIVE\s+VERIFIED\s+CREATED\s+LAST LOGIN$/);
      expect(run.stdout).toMatch(new RegExp(`^${user.username}\\s+${user.email}\\s+no\\s+yes\\s+no\\s`, 'm'));
    });
  });

  describe('clients', () => {
    it('create-client --confidential prints a secret once that authenticates the client', async () => {
      const clientId = uniqueName('cli-client');
      const run = await cli([
        'create-client',
        '--client-id',
        clientId,
        '--name',
        'Build bot',
        '--scopes',
        'api:read,api:admin',
        '--grants',
        'client_credentials',
        '--confidential',
        '--access-lifetime',
        '300',
      ]);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`created confidential client ${clientId}`);
      const secret = generated(run.stdout, 'client_secret');
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const client = await findClient(db, clientId);
      expect(client).toMatchObject({
        name: 'Build bot',
        isConfidential: true,
        allowedScopes: ['api:read', 'api:admin'],
        allowedGrantTypes: ['client_credentials'],
        accessTokenLifetime: 300,
        refreshTokenLifetime: undefined,
        isActive: true,
      });
      expect(await verifyPassword(secret, client!.secretHash!)).toBe(true);
    });

    it('create-client makes a public client without a secret', async () => {
      const clientId = uniqueName('cli-public');
      const run = await cli([
        'create-client',
        '--client-id',
        clientId,
        '--name',
        'IDE',
        '--scopes',
        'api:read api:write',
        '--grants',
        'password,refresh_token',
        '--refresh-lifetime',
        '86400',
      ]);
      expect(run.code).toBe(0);
      expect(run.stdout).not.toContain('client_secret');
      expect(await findClient(db, clientId)).toMatchObject({ isConfidential: false, secretHash: undefined, refreshTokenLifetime: 86400 });
    });

    it('create-client validates its input, naming the problem (exit 1)', async () => {
      const clientId = uniqueName('cli-bad-client');
      const base = ['--client-id', clientId, '--name', 'n'];
      const cases: [string[], string][] = [
        [['--client-id', 'a b', '--name', 'n', '--scopes', 'api:read', '--grants', 'password'], "invalid --client-id 'a b'"],
        [[...base, '--scopes', 'api:read api:everything', '--grants', 'password'], 'unknown scope(s) api:everything in --scopes'],
        [[...base, '--scopes', 'api:read', '--grants', 'implicit'], 'unknown grant(s) implicit in --grants'],
        [[...base, '--scopes', 'api:read', '--grants', 'client_credentials'], 'the client_credentials grant needs a confidential client'],
        [[...base, '--scopes', 'api:read', '--grants', 'password', '--access-lifetime', '0'], "invalid --access-lifetime '0'"],
        [
          [...base, '--scopes', 'api:read', '--grants', 'password', '--refresh-lifetime', 'forever'],
          "invalid --refresh-lifetime 'forever'",
        ],
        [[...base, '--grants', 'password'], '--scopes is required'],
      ];
      const runs = await Promise.all(cases.map(([args]) => cliInProcess(['create-client', ...args])));
      runs.forEach((run, i) => {
        expect(run.code, cases[i]![1]).toBe(1);
        expect(run.stderr).toContain(cases[i]![1]);
      });
      expect(await findClient(db, clientId)).toBeUndefined();
    });

    it('create-client refuses an existing client id', async () => {
      const { clientId } = await newClient(db, { confidential: false });
      const run = await cli(['create-client', '--client-id', clientId, '--name', 'n', '--scopes', 'api:read', '--grants', 'password']);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`client '${clientId}' already exists`);
    });

    it('disable-client turns the client off and revokes its tokens; list-clients shows it', async () => {
      const clientId = uniqueName('cli-off');
      expect(
        (
          await cli([
            'create-client',
            '--client-id',
            clientId,
            '--name',
            'Off',
            '--scopes',
            'api:read',
            '--grants',
            'password,refresh_token',
          ])
        ).code,
      ).toBe(0);
      const token = await liveTokenOf((await newUser(db)).id, clientId);
      const run = await cli(['disable-client', '--client-id', clientId]);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`disabled client ${clientId}; 1 refresh token(s) revoked`);
      expect(await isRevoked(token)).toBe(true);
      const list = await cli(['list-clients']);
      expect(list.stdout).toMatch(
        new RegExp(`^${clientId}\\s+Off\\s+public\\s+no\\s+api:read\\s+password,refresh_token\\s+default\\s+default$`, 'm'),
      );
      expect((await cli(['disable-client', '--client-id', uniqueName('ghost')])).code).toBe(1);
    });
  });
});
