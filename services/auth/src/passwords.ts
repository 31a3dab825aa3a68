/**
 * Password hashing with scrypt (node:crypto), stored self-describing so that the cost can be raised
 * later without breaking existing hashes: `scrypt$<N>$<r>$<p>$<saltB64>$<hashB64>`.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export const SCRYPT_PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;
/** Upper bounds accepted when reading a stored hash (a corrupt row must not exhaust memory). */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;

function derive(password: string, salt: Buffer, N: number, r: number, p: number, keyLength: number): Promise<Buffer> {
  // scrypt needs about 128 * N * r bytes; the default maxmem (32 MiB) is just too small for N=2^15, r=8.
  const options: ScryptOptions = { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  const { N, r, p } = SCRYPT_PARAMS;
  const salt = randomBytes(SALT_LENGTH);
  const key = await derive(password, salt, N, r, p, KEY_LENGTH);
  return ['scrypt', N, r, p, salt.toString('base64'), key.toString('base64')].join('$');
}

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

function parseHash(stored: string): ParsedHash | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map((s) => (/^\d{1,8}$/.test(s) ? Number(s) : NaN)) as [number, number, number];
  const valid = N >= 2 && N <= MAX_N && (N & (N - 1)) === 0 && r >= 1 && r <= MAX_R && p >= 1 && p <= MAX_P;
  const salt = Buffer.from(parts[4]!, 'base64');
  const key = Buffer.from(parts[5]!, 'base64');
  if (!valid || salt.length === 0 || key.length < 16) return undefined;
  return { N, r, p, salt, key };
}

/** Constant-time check of a password against a stored hash; false for a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed) {
    await verifyDummy(password);
    return false;
  }
  const key = await derive(password, parsed.salt, parsed.N, parsed.r, parsed.p, parsed.key.length);
  return timingSafeEqual(key, parsed.key);
}

/** A hash of no password (random salt and key) with the current parameters. */
const DUMMY: ParsedHash = { ...SCRYPT_PARAMS, salt: randomBytes(SALT_LENGTH), key: randomBytes(KEY_LENGTH) };

/**
 * Spends the time of one verification and returns false: called when the user does not exist, so
 * that an unknown username and a wrong password take the same time.
 */
export async function verifyDummy(password: string): Promise<false> {
  const key = await derive(password, DUMMY.salt, DUMMY.N, DUMMY.r, DUMMY.p, DUMMY.key.length);
  timingSafeEqual(key, DUMMY.key);
  return false;
}
