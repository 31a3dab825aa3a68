/**
 * Users: lookups for login (username first, then email, both case-insensitive), creation, and the
 * administration the CLI does (password reset, disable and enable, the admin role).
 *
 * `isAdmin` is the user's role: only an admin's tokens may carry api:admin (scopes.ts).
 */
import type { Queryable } from '@codelab/service-kit';
import { hashPassword } from './passwords.ts';

export interface User {
  id: string;
  username: string;
  email: string;
  passwordHash: string;
  isActive: boolean;
  isVerified: boolean;
  isAdmin: boolean;
}

interface UserRow {
  id: string;
  username: string;
  email: string;
  password_hash: string;
  is_active: boolean;
  is_verified: boolean;
  is_admin: boolean;
}

const COLUMNS = 'id, username, email, password_hash, is_active, is_verified, is_admin';

function toUser(row: UserRow): User {
  return {
    id: row.id,
    username: row.username,
    email: row.email,
    passwordHash: row.password_hash,
    isActive: row.is_active,
    isVerified: row.is_verified,
    isAdmin: row.is_admin,
  };
}

/** The user whose username, or else whose email, equals `login` ignoring case. */
export async function findUserByLogin(db: Queryable, login: string): Promise<User | undefined> {
  const { rows } = await db.query<UserRow>(
    `SELECT ${COLUMNS} FROM users
      WHERE lower(username) = lower($1) OR lower(email) = lower($1)
      ORDER BY (lower(username) = lower($1)) DESC
      LIMIT 1`,
    [login],
  );
  return rows[0] && toUser(rows[0]);
}

export async function findUserById(db: Queryable, id: string): Promise<User | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE id = $1`, [id]);
  return rows[0] && toUser(rows[0]);
}

/** The user with this username, ignoring case (never by email: for administration). */
export async function findUserByUsername(db: Queryable, username: string): Promise<User | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE lower(username) = lower($1)`, [username]);
  return rows[0] && toUser(rows[0]);
}

export interface UserSummary {
  username: string;
  email: string;
  isActive: boolean;
  isVerified: boolean;
  isAdmin: boolean;
  createdAt: Date;
  lastLoginAt: Date | null;
}

export async function listUsers(db: Queryable): Promise<UserSummary[]> {
  const { rows } = await db.query<{
    username: string;
    email: string;
    is_active: boolean;
    is_verified: boolean;
    is_admin: boolean;
    created_at: Date;
    last_login_at: Date | null;
  }>('SELECT username, email, is_active, is_verified, is_admin, created_at, last_login_at FROM users ORDER BY lower(username)');
  return rows.map((r) => ({
    username: r.username,
    email: r.email,
    isActive: r.is_active,
    isVerified: r.is_verified,
    isAdmin: r.is_admin,
    createdAt: r.created_at,
    lastLoginAt: r.last_login_at,
  }));
}

export interface NewUser {
  username: string;
  email: string;
  password: string;
  isActive?: boolean;
  isVerified?: boolean;
  isAdmin?: boolean;
}

/** Creates a user; undefined when the username or email (ignoring case) is already taken. */
export async function createUser(db: Queryable, user: NewUser): Promise<User | undefined> {
  const passwordHash = await hashPassword(user.password);
  const { rows } = await db.query<UserRow>(
    `INSERT INTO users (username, email, password_hash, is_active, is_verified, is_admin)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT DO NOTHING
     RETURNING ${COLUMNS}`,
    [user.username, user.email, passwordHash, user.isActive ?? true, user.isVerified ?? false, user.isAdmin ?? false],
  );
  return rows[0] && toUser(rows[0]);
}

export async function recordLogin(db: Queryable, userId: string): Promise<void> {
  await db.query('UPDATE users SET last_login_at = now() WHERE id = $1', [userId]);
}

export async function setUserActive(db: Queryable, userId: string, active: boolean): Promise<void> {
  await db.query('UPDATE users SET is_active = $2, updated_at = now() WHERE id = $1', [userId, active]);
}

export async function setUserPassword(db: Queryable, userId: string, password: string): Promise<void> {
  const passwordHash = await hashPassword(password);
  await db.query('UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1', [userId, passwordHash]);
}

/** Grants or revokes the admin role (effective at the user's next login or refresh). */
export async function setUserAdmin(db: Queryable, userId: string, admin: boolean): Promise<void> {
  await db.query('UPDATE users SET is_admin = $2, updated_at = now() WHERE id = $1', [userId, admin]);
}
