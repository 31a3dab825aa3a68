/**
 * RS256 signing keys. The pair lives in two PEM files (PKCS8 private, SPKI public). Outside
 * production a missing pair is generated and written once; in production, or when only one file of
 * the pair is there, startup fails instead of silently issuing tokens nobody can verify.
 *
 * `kid` is the RFC 7638 thumbprint of the public key, so it changes exactly when the key does. The
 * JWKS is built from a list of public keys, ready to publish a next or previous key during rotation.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, exportPKCS8, exportSPKI, generateKeyPair, importPKCS8, importSPKI } from 'jose';
import type { Logger } from 'pino';

export const SIGNING_ALG = 'RS256';

export interface PublicJwk {
  kty: 'RSA';
  n: string;
  e: string;
  kid: string;
  alg: typeof SIGNING_ALG;
  use: 'sig';
}

export interface VerificationKey {
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
  jwks(): { keys: PublicJwk[] };
}

export interface KeyFiles {
  privateKeyPath: string;
  publicKeyPath: string;
  environment: string;
  logger: Logger;
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

async function generatePemPair(files: KeyFiles): Promise<{ privatePem: string; publicPem: string }> {
  const pair = await generateKeyPair(SIGNING_ALG, { modulusLength: 2048, extractable: true });
  const privatePem = await exportPKCS8(pair.privateKey);
  const publicPem = await exportSPKI(pair.publicKey);
  await mkdir(path.dirname(files.privateKeyPath), { recursive: true });
  await mkdir(path.dirname(files.publicKeyPath), { recursive: true });
  // 'wx': never overwrite a key that appeared meanwhile (another instance starting on the same volume).
  await writeFile(files.privateKeyPath, privatePem, { mode: 0o600, flag: 'wx' });
  await writeFile(files.publicKeyPath, publicPem, { mode: 0o644, flag: 'wx' });
  // The umask may have narrowed the modes above; set them exactly.
  await chmod(files.privateKeyPath, 0o600);
  await chmod(files.publicKeyPath, 0o644);
  return { privatePem, publicPem };
}

/** Loads the key pair, generating it first when both files are missing outside production. */
export async function loadKeyRing(files: KeyFiles): Promise<KeyRing> {
  let [privatePem, publicPem] = await Promise.all([readIfPresent(files.privateKeyPath), readIfPresent(files.publicKeyPath)]);
  if (privatePem === undefined && publicPem === undefined) {
    if (files.environment === 'production') {
      throw new Error(
        `signing keys not found: ${files.privateKeyPath} and ${files.publicKeyPath} are missing. In production they must be ` +
          'provisioned (e.g. openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out private_key.pem && ' +
          'openssl pkey -in private_key.pem -pubout -out public_key.pem) and set with AUTH_SERVICE__PRIVATE_KEY_PATH / AUTH_SERVICE__PUBLIC_KEY_PATH',
      );
    }
    ({ privatePem, publicPem } = await generatePemPair(files));
    files.logger.warn(
      { private_key_path: files.privateKeyPath, public_key_path: files.publicKeyPath },
      'no signing key pair found: generated a new RS256 key pair (tokens signed by any earlier key no longer verify)',
    );
  } else if (privatePem === undefined || publicPem === undefined) {
    const missing = privatePem === undefined ? files.privateKeyPath : files.publicKeyPath;
    const present = privatePem === undefined ? files.publicKeyPath : files.privateKeyPath;
    throw new Error(`signing key pair incomplete: ${missing} is missing but ${present} exists; restore the missing file or remove both to generate a new pair`);
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
  if (Buffer.from(jwk.n, 'base64url').length * 8 < 2048) throw new Error(`${files.privateKeyPath}: RS256 keys must have at least 2048 bits`);
  files.logger.info({ kid: jwk.kid, private_key_path: files.privateKeyPath }, 'signing key loaded');
  return createKeyRing(signingKey, [{ kid: jwk.kid, key: publicKey, jwk }]);
}

export function createKeyRing(signingKey: CryptoKey, verificationKeys: readonly VerificationKey[]): KeyRing {
  const current = verificationKeys[0];
  if (!current) throw new Error('a key ring needs at least one public key');
  const body = { keys: verificationKeys.map((k) => k.jwk) };
  return {
    signingKey,
    kid: current.kid,
    verificationKeys,
    jwks: () => structuredClone(body),
  };
}
