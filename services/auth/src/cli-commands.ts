/**
 * The commands of the auth CLI (cli.ts): their options, input checks (done before the database is
 * opened) and work. Input errors throw UsageError (exit 1), naming the problem.
 */
import { randomBytes } from 'node:crypto';
import type { ParseArgsConfig } from 'node:util';
import type { Database } from '@codelab/service-kit';
import { createClient, KNOWN_SCOPES, listClients, setClientActive, SUPPORTED_GRANT_TYPES, type GrantType } from './clients.ts';
import { authSettings } from './config.ts';
import { hashPassword } from './passwords.ts';
import { revokeTokensOfClient, revokeTokensOfUser } from './refresh-tokens.ts';
import { createUser, findUserByUsername, listUsers, setUserActive, setUserAdmin, setUserPassword, type User } from './users.ts';

const USERNAME = /^[A-Za-z0-9_.-]{3,64}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const CLIENT_ID = /^[A-Za-z0-9_.-]{3,128}$/;
const MIN_PASSWORD = 12;
const MAX_PASSWORD = 1024;

/** Bad input: exit 1. */
export class UsageError extends Error {}

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
  env: NodeJS.ProcessEnv;
}

export type Values = Record<string, string | boolean | undefined>;
type Options = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  usage: string;
  summary: string;
  options: Options;
  /** Checks the input (before the database is opened) and returns the work to do with the database. */
  prepare(values: Values, io: CliIo): Promise<(db: Database) => Promise<void>>;
}

const str = (values: Values, name: string): string | undefined => {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
};

function required(values: Values, name: string): string {
  const v = str(values, name);
  if (v === undefined || v.trim() === '') throw new UsageError(`--${name} is required`);
  return v;
}

function checkUsername(username: string): string {
  if (!USERNAME.test(username)) throw new UsageError(`invalid --username '${username}': 3 to 64 characters from A-Z a-z 0-9 _ . -`);
  return username;
}

function checkPassword(password: string): string {
  const length = [...password].length;
  if (length < MIN_PASSWORD) throw new UsageError(`the password is too short: at least ${MIN_PASSWORD} characters (got ${length})`);
  if (length > MAX_PASSWORD) throw new UsageError(`the password is too long: at most ${MAX_PASSWORD} characters`);
  return password;
}

/** 24 characters from [A-Za-z0-9_-] (144 bits). */
const generatePassword = (): string => randomBytes(18).toString('base64url');

/** The password given (--password or --password-stdin), or a generated one (printed once by the caller). */
async function passwordOf(values: Values, io: CliIo): Promise<{ password: string; generated: boolean }> {
  const given = str(values, 'password');
  if (given !== undefined && values['password-stdin']) throw new UsageError('use --password or --password-stdin, not both');
  if (values['password-stdin']) return { password: checkPassword((await io.readStdin()).replace(/\r?\n$/, '')), generated: false };
  if (given !== undefined) return { password: checkPassword(given), generated: false };
  return { password: generatePassword(), generated: true };
}

async function existingUser(db: Database, username: string): Promise<User> {
  const user = await findUserByUsername(db, username);
  if (!user) throw new UsageError(`no user '${username}'`);
  return user;
}

function listOf(raw: string): string[] {
  return [...new Set(raw.split(/[\s,]+/).filter(Boolean))];
}

function lifetime(values: Values, name: 'access-lifetime' | 'refresh-lifetime'): number | undefined {
  const raw = str(values, name);
  if (raw === undefined) return undefined;
  const spec = name === 'access-lifetime' ? authSettings.accessTokenLifetime : authSettings.refreshTokenLifetime;
  const value = spec.parse(raw);
  if (value === undefined) throw new UsageError(`invalid --${name} '${raw}': expected seconds, ${spec.expects}`);
  return value;
}

/** Left-aligned columns. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return `${[header, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

const minute = (d: Date | null): string => (d ? d.toISOString().slice(0, 16).replace('T', ' ') : '-');
const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

const USERNAME_OPTION: Options = { username: { type: 'string' } };
const PASSWORD_OPTIONS: Options = { password: { type: 'string' }, 'password-stdin': { type: 'boolean' } };

export const COMMANDS: Record<string, Command> = {
  'create-user': {
    usage: 'create-user --username NAME --email EMAIL [--password PASSWORD | --password-stdin] [--admin]',
    summary: 'create an active user (an admin with --admin); without a password one is generated and printed once',
    options: { ...USERNAME_OPTION, email: { type: 'string' }, ...PASSWORD_OPTIONS, admin: { type: 'boolean' } },
    async prepare(values, io) {
      const username = checkUsername(required(values, 'username'));
      const email = required(values, 'email');
      if (!EMAIL.test(email) || email.length > 255)
        throw new UsageError(`invalid --email '${email}': expected an address like name@example.com`);
      const { password, generated } = await passwordOf(values, io);
      const isAdmin = values.admin === true;
      return async (db) => {
        const user = await createUser(db, { username, email, password, isAdmin });
        if (!user) throw new UsageError(`username '${username}' or email '${email}' is already taken`);
        io.stdout(`created ${isAdmin ? 'admin ' : ''}user ${user.username} (${user.id})\n`);
        if (generated) io.stdout(`password (shown once): ${password}\n`);
      };
    },
  },
  'reset-password': {
    usage: 'reset-password --username NAME [--password PASSWORD | --password-stdin]',
    summary: "set a user's password (generated when none is given) and revoke the user's refresh tokens",
    options: { ...USERNAME_OPTION, ...PASSWORD_OPTIONS },
    async prepare(values, io) {
      const username = required(values, 'username');
      const { password, generated } = await passwordOf(values, io);
      return async (db) => {
        const user = await existingUser(db, username);
        await setUserPassword(db, user.id, password);
        const revoked = await revokeTokensOfUser(db, user.id);
        io.stdout(`password of ${user.username} reset; ${revoked} refresh token(s) revoked\n`);
        if (generated) io.stdout(`password (shown once): ${password}\n`);
      };
    },
  },
  'disable-user': {
    usage: 'disable-user --username NAME',
    summary: "refuse the user's logins and refreshes, and revoke the user's refresh tokens",
    options: USERNAME_OPTION,
    async prepare(values, io) {
      const username = required(values, 'username');
      return async (db) => {
        const user = await existingUser(db, username);
        await setUserActive(db, user.id, false);
        const revoked = await revokeTokensOfUser(db, user.id);
        io.stdout(`disabled user ${user.username}; ${revoked} refresh token(s) revoked\n`);
      };
    },
  },
  'enable-user': {
    usage: 'enable-user --username NAME',
    summary: 'let a disabled user log in again',
    options: USERNAME_OPTION,
    async prepare(values, io) {
      const username = required(values, 'username');
      return async (db) => {
        const user = await existingUser(db, username);
        await setUserActive(db, user.id, true);
        io.stdout(`enabled user ${user.username}\n`);
      };
    },
  },
  'set-admin': {
    usage: 'set-admin --username NAME [--revoke]',
    summary: 'make a user an admin (its tokens may carry api:admin when asked for), or no longer with --revoke',
    options: { ...USERNAME_OPTION, revoke: { type: 'boolean' } },
    async prepare(values, io) {
      const username = required(values, 'username');
      const admin = values.revoke !== true;
      return async (db) => {
        const user = await existingUser(db, username);
        if (user.isAdmin === admin) {
          io.stdout(`${user.username} is ${admin ? 'already' : 'not'} an admin: nothing to do\n`);
          return;
        }
        await setUserAdmin(db, user.id, admin);
        io.stdout(
          admin
            ? `${user.username} is now an admin: a login asking for api:admin gets it\n`
            : `${user.username} is no longer an admin: its tokens lose api:admin at their next refresh (access tokens already issued keep it until they expire)\n`,
        );
      };
    },
  },
  'create-client': {
    usage:
      'create-client --client-id ID --name NAME --scopes "api:read api:write" --grants password,refresh_token\n' +
      '              [--confidential] [--access-lifetime SECONDS] [--refresh-lifetime SECONDS]',
    summary: 'create an OAuth client; a confidential one gets a generated secret, printed once',
    options: {
      'client-id': { type: 'string' },
      name: { type: 'string' },
      scopes: { type: 'string' },
      grants: { type: 'string' },
      confidential: { type: 'boolean' },
      'access-lifetime': { type: 'string' },
      'refresh-lifetime': { type: 'string' },
    },
    async prepare(values, io) {
      const clientId = required(values, 'client-id');
      if (!CLIENT_ID.test(clientId)) throw new UsageError(`invalid --client-id '${clientId}': 3 to 128 characters from A-Z a-z 0-9 _ . -`);
      const name = required(values, 'name').trim();
      if (name.length > 255) throw new UsageError('--name is too long: at most 255 characters');
      const scopes = listOf(required(values, 'scopes'));
      const unknownScopes = scopes.filter((s) => !(KNOWN_SCOPES as readonly string[]).includes(s));
      if (unknownScopes.length)
        throw new UsageError(`unknown scope(s) ${unknownScopes.join(', ')} in --scopes: expected some of ${KNOWN_SCOPES.join(', ')}`);
      const grants = listOf(required(values, 'grants'));
      const unknownGrants = grants.filter((g) => !(SUPPORTED_GRANT_TYPES as readonly string[]).includes(g));
      if (unknownGrants.length)
        throw new UsageError(
          `unknown grant(s) ${unknownGrants.join(', ')} in --grants: expected some of ${SUPPORTED_GRANT_TYPES.join(', ')}`,
        );
      const confidential = values.confidential === true;
      if (grants.includes('client_credentials') && !confidential)
        throw new UsageError('the client_credentials grant needs a confidential client: add --confidential');
      const accessTokenLifetime = lifetime(values, 'access-lifetime');
      const refreshTokenLifetime = lifetime(values, 'refresh-lifetime');

      return async (db) => {
        const secret = confidential ? randomBytes(32).toString('base64url') : undefined;
        const created = await createClient(db, {
          clientId,
          name,
          allowedScopes: scopes,
          allowedGrantTypes: grants as GrantType[],
          ...(accessTokenLifetime !== undefined ? { accessTokenLifetime } : {}),
          ...(refreshTokenLifetime !== undefined ? { refreshTokenLifetime } : {}),
          ...(secret !== undefined ? { secretHash: await hashPassword(secret) } : {}),
        });
        if (!created) throw new UsageError(`client '${clientId}' already exists`);
        io.stdout(`created ${confidential ? 'confidential' : 'public'} client ${clientId}\n`);
        if (secret !== undefined) io.stdout(`client_secret (shown once): ${secret}\n`);
      };
    },
  },
  'disable-client': {
    usage: 'disable-client --client-id ID',
    summary: "refuse the client's requests and revoke its refresh tokens",
    options: { 'client-id': { type: 'string' } },
    async prepare(values, io) {
      const clientId = required(values, 'client-id');
      return async (db) => {
        if (!(await setClientActive(db, clientId, false))) throw new UsageError(`no client '${clientId}'`);
        const revoked = await revokeTokensOfClient(db, clientId);
        io.stdout(`disabled client ${clientId}; ${revoked} refresh token(s) revoked\n`);
      };
    },
  },
  'enable-client': {
    usage: 'enable-client --client-id ID',
    summary: 'let a disabled client in again',
    options: { 'client-id': { type: 'string' } },
    async prepare(values, io) {
      const clientId = required(values, 'client-id');
      return async (db) => {
        if (!(await setClientActive(db, clientId, true))) throw new UsageError(`no client '${clientId}'`);
        io.stdout(`enabled client ${clientId}\n`);
      };
    },
  },
  'list-users': {
    usage: 'list-users',
    summary: 'the users, with their role (admin), state and last login',
    options: {},
    async prepare(_values, io) {
      return async (db) => {
        const rows = (await listUsers(db)).map((u) => [
          u.username,
          u.email,
          yesNo(u.isAdmin),
          yesNo(u.isActive),
          yesNo(u.isVerified),
          minute(u.createdAt),
          minute(u.lastLoginAt),
        ]);
        io.stdout(table(['USERNAME', 'EMAIL', 'ADMIN', 'ACTIVE', 'VERIFIED', 'CREATED', 'LAST LOGIN'], rows));
      };
    },
  },
  'list-clients': {
    usage: 'list-clients',
    summary: 'the OAuth clients, with their type, scopes, grants and lifetimes',
    options: {},
    async prepare(_values, io) {
      return async (db) => {
        const rows = (await listClients(db)).map((c) => [
          c.clientId,
          c.name,
          c.isConfidential ? 'confidential' : 'public',
          yesNo(c.isActive),
          c.allowedScopes.join(' '),
          c.allowedGrantTypes.join(','),
          String(c.accessTokenLifetime ?? 'default'),
          String(c.refreshTokenLifetime ?? 'default'),
        ]);
        io.stdout(table(['CLIENT ID', 'NAME', 'TYPE', 'ACTIVE', 'SCOPES', 'GRANTS', 'ACCESS S', 'REFRESH S'], rows));
      };
    },
  },
};
