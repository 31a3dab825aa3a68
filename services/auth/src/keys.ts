/**
 * RS256 signing keys. The signing pair comes from the environment (PEM in
 * `AUTH_SERVICE__PRIVATE_KEY` / `AUTH_SERVICE__PUBLIC_KEY`, for production secrets) or from two
 * PEM files (PKCS8 private, SPKI public). A missing pair of files is generated and written once when
 * generation is allowed (outside production, or AUTH_SERVICE__GENERATE_KEYS=true); otherwise, or when
 * only one file of the pair is there, startup fails instead of silently issuing tokens nobody can
 * verify. Instances starting together on one key volume agree on one pair: each file appears whole
 * (written aside, then linked into place), the first pair linked wins, and the others read it.
 *
 * `kid` is the RFC 7638 thumbprint of the public key, so it changes exactly when the key does.
 * Rotation (README "Key rotation"): additional public keys are published in the JWKS and accepted
 * for verification next to the signing key: (1) publish the next key as additional, (2) switch
 * signing to it and keep the old public key as additional, (3) drop the old one once the longest
 * token signed with it has expired.
 */
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, exportPKCS8, exportSPKI, generateKeyPair, importPKCS8, importSPKI } from 'jose';
import type { Logger } from 'pino';

export const SIGNING_ALG = 'RS256';

interface PublicJwk {
  kty: 'RSA';
  n: string;
  e: string;
  kid: string;
  alg: typeof SIGNING_ALG;
  use: 'sig';
}

interface VerificationKey {
  kid: string;
  key: CryptoKey;
  jwk: PublicJwk;
}

export interface KeyRing {
  /** Private key every token is signed with. */
  readonly signingKey: CryptoKey;
  /** kid of the signing key (header of every token). */
  readonly kid: string;
  /** Public keys tokens are verified with; the signing key's first. */
  readonly verificationKeys: readonly VerificationKey[];
  /** When the signing key was made (its file's modification time), if known: the rotation-age alert reads it. */
  readonly signingKeyCreatedAt: Date | undefined;
  jwks(): { keys: PublicJwk[] };
}

export interface KeyFiles {
  privateKeyPath: string;
  publicKeyPath: string;
  /** The signing pair as PEM text (from the environment); takes precedence over the files. */
  privateKeyPem?: string | undefined;
  publicKeyPem?: string | undefined;
  /** Public keys (SPKI PEM files) published and accepted besides the signing key, during a rotation. */
  additionalPublicKeyPaths?: readonly string[];
  /** Generate the pair when both files are missing (outside production, or AUTH_SERVICE__GENERATE_KEYS=true). */
  generate: boolean;
  logger: Logger;
}

/** PEM given in an environment variable, possibly with `\n` escapes instead of newlines. */
function pemFromEnv(value: string): string {
  return value.includes('-----BEGIN') && !value.includes('\n', value.indexOf('-----BEGIN')) ? value.replace(/\\n/g, '\n') : value;
}

async function readIfPresent(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read signing key ${file}: ${(err as Error).message}`, { cause: err });
  }
}

async function publicJwk(key: CryptoKey): Promise<PublicJwk> {
  const { kty, n, e } = await exportJWK(key);
  if (kty !== 'RSA' || !n || !e) throw new Error('the public key is not an RSA key');
  const kid = await calculateJwkThumbprint({ kty, n, e }, 'sha256');
  return { kty: 'RSA', n, e, kid, alg: SIGNING_ALG, use: 'sig' };
}

/** Writes `content` to `file` unless it exists, whole or not at all (aside, then linked); false when it existed. */
async function createWhole(file: string, content: string, mode: number): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, content, { mode });
  await chmod(tmp, mode); // the umask may have narrowed it
  try {
    await link(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** The file was written in the last 30 s (a pair being generated, not one left incomplete). */
async function justWritten(file: string): Promise<boolean> {
  const st = await stat(file).catch(() => undefined);
  return st !== undefined && Date.now() - st.mtimeMs < 30_000;
}

/** The pair in the files once both are there (another instance is writing it), within `ms`. */
async function awaitPair(files: KeyFiles, ms: number): Promise<{ privatePem: string; publicPem: string } | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const [privatePem, publicPem] = await Promise.all([readIfPresent(files.privateKeyPath), readIfPresent(files.publicKeyPath)]);
    if (privatePem !== undefined && publicPem !== undefined) return { privatePem, publicPem };
    if (Date.now() >= deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Generates the pair; when another instance linked its private key first, takes that instance's pair. */
async function generatePemPair(files: KeyFiles): Promise<{ privatePem: string; publicPem: string; generated: boolean }> {
  const pair = await generateKeyPair(SIGNING_ALG, { modulusLength: 2048, extractable: true });
  const privatePem = await exportPKCS8(pair.privateKey);
  const publicPem = await exportSPKI(pair.publicKey);
  await mkdir(path.dirname(files.privateKeyPath), { recursive: true });
  await mkdir(path.dirname(files.publicKeyPath), { recursive: true });
  // The private key decides: whoever links it first writes the public key after it.
  if (await createWhole(files.privateKeyPath, privatePem, 0o600)) {
    await createWhole(files.publicKeyPath, publicPem, 0o644);
    return { privatePem, publicPem, generated: true };
  }
  const theirs = await awaitPair(files, 10_000);
  if (!theirs)
    throw new Error(`signing key pair incomplete: ${files.privateKeyPath} appeared but ${files.publicKeyPath} did not follow within 10 s`);
  return { ...theirs, generated: false };
}

/** Loads the signing pair (environment, else files, generated first outside production) and the additional public keys. */
export async function loadKeyRing(files: KeyFiles): Promise<KeyRing> {
  const fromEnv = files.privateKeyPem !== undefined || files.publicKeyPem !== undefined;
  if (fromEnv && (files.privateKeyPem === undefined || files.publicKeyPem === undefined)) {
    throw new Error('signing key pair incomplete: set both AUTH_SERVICE__PRIVATE_KEY and AUTH_SERVICE__PUBLIC_KEY, or neither');
  }
  let [privatePem, publicPem] = fromEnv
    ? [pemFromEnv(files.privateKeyPem!), pemFromEnv(files.publicKeyPem!)]
    : await Promise.all([readIfPresent(files.privateKeyPath), readIfPresent(files.publicKeyPath)]);
  if (!fromEnv && privatePem !== undefined && publicPem === undefined && files.generate && (await justWritten(files.privateKeyPath))) {
    // another instance starting on the same volume has just linked its private key: its public key follows
    publicPem = (await awaitPair(files, 10_000))?.publicPem;
  }
  if (privatePem === undefined && publicPem === undefined) {
    if (!files.generate) {
      throw new Error(
        `signing keys not found: ${files.privateKeyPath} and ${files.publicKeyPath} are missing. In production they must be ` +
          'provisioned (e.g. openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out private_key.pem && ' +
          'openssl pkey -in private_key.pem -pubout -out public_key.pem) and set with AUTH_SERVICE__PRIVATE_KEY_PATH / AUTH_SERVICE__PUBLIC_KEY_PATH, ' +
          'or generated on a volume of their own with AUTH_SERVICE__GENERATE_KEYS=true',
      );
    }
    const made = await generatePemPair(files);
    ({ privatePem, publicPem } = made);
    if (made.generated) {
      files.logger.warn(
        { private_key_path: files.privateKeyPath, public_key_path: files.publicKeyPath },
        'no signing key pair found: generated a new RS256 key pair (tokens signed by any earlier key no longer verify)',
      );
    }
  }
  if (privatePem === undefined || publicPem === undefined) {
    const missing = privatePem === undefined ? files.privateKeyPath : files.publicKeyPath;
    const present = privatePem === undefined ? files.publicKeyPath : files.privateKeyPath;
    throw new Error(
      `signing key pair incomplete: ${missing} is missing but ${present} exists; restore the missing file or remove both to generate a new pair`,
    );
  }

  let signingKey: CryptoKey;
  let publicKey: CryptoKey;
  try {
    signingKey = await importPKCS8(privatePem, SIGNING_ALG, { extractable: true });
  } catch (err) {
    throw new Error(`${files.privateKeyPath} is not a PKCS8 PEM RSA private key: ${(err as Error).message}`, { cause: err });
  }
  try {
    publicKey = await importSPKI(publicPem, SIGNING_ALG, { extractable: true });
  } catch (err) {
    throw new Error(`${files.publicKeyPath} is not an SPKI PEM RSA public key: ${(err as Error).message}`, { cause: err });
  }
  const jwk = await publicJwk(publicKey);
  const fromPrivate = await exportJWK(signingKey);
  if (fromPrivate.n !== jwk.n || fromPrivate.e !== jwk.e) {
    throw new Error(`${files.publicKeyPath} is not the public key of ${files.privateKeyPath}`);
  }
  if (Buffer.from(jwk.n, 'base64url').length * 8 < 2048)
    throw new Error(`${files.privateKeyPath}: RS256 keys must have at least 2048 bits`);
  const createdAt = fromEnv ? undefined : (await stat(files.privateKeyPath)).mtime;

  const additional: VerificationKey[] = [];
  for (const file of files.additionalPublicKeyPaths ?? []) {
    const pem = await readIfPresent(file);
    if (pem === undefined) throw new Error(`additional public key ${file} does not exist`);
    let key: CryptoKey;
    try {
      key = await importSPKI(pem, SIGNING_ALG, { extractable: true });
    } catch (err) {
      throw new Error(`${file} is not an SPKI PEM RSA public key: ${(err as Error).message}`, { cause: err });
    }
    const extra = await publicJwk(key);
    if (extra.kid !== jwk.kid && !additional.some((k) => k.kid === extra.kid)) additional.push({ kid: extra.kid, key, jwk: extra });
  }
  files.logger.info(
    { kid: jwk.kid, source: fromEnv ? 'environment' : files.privateKeyPath, additional_kids: additional.map((k) => k.kid) },
    'signing key loaded',
  );
  return createKeyRing(signingKey, [{ kid: jwk.kid, key: publicKey, jwk }, ...additional], createdAt);
}

function createKeyRing(signingKey: CryptoKey, verificationKeys: readonly VerificationKey[], signingKeyCreatedAt?: Date): KeyRing {
  const current = verificationKeys[0];
  if (!current) throw new Error('a key ring needs at least one public key');
  const body = { keys: verificationKeys.map((k) => k.jwk) };
  return {
    signingKey,
    kid: current.kid,
    verificationKeys,
    signingKeyCreatedAt,
    jwks: () => structuredClone(body),
  };
}
