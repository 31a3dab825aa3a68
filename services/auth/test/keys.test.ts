import { access, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { calculateJwkThumbprint, exportPKCS8, generateKeyPair, SignJWT, createLocalJWKSet, jwtVerify } from 'jose';
import { capturingLogger, silentLogger } from '@codelab/service-kit/testing';
import { loadKeyRing, type KeyFiles } from '../src/keys.ts';
import { tempDir } from './helpers.ts';

const exists = (file: string): Promise<boolean> =>
  access(file).then(
    () => true,
    () => false,
  );

describe('keys', () => {
  let dir: string;
  let remove: () => Promise<void>;
  let files: KeyFiles;

  beforeEach(async () => {
    ({ dir, remove } = await tempDir());
    files = {
      privateKeyPath: path.join(dir, 'auth', 'keys', 'private_key.pem'),
      publicKeyPath: path.join(dir, 'auth', 'keys', 'public_key.pem'),
      generate: true,
      logger: silentLogger(),
    };
  });
  afterEach(() => remove());

  describe('loadKeyRing', () => {
    it('generates and persists a pair on first start, with private 600 and public 644', async () => {
      const { logger, lines } = capturingLogger();
      const ring = await loadKeyRing({ ...files, logger });
      expect((await stat(files.privateKeyPath)).mode & 0o777).toBe(0o600);
      expect((await stat(files.publicKeyPath)).mode & 0o777).toBe(0o644);
      expect(await readFile(files.privateKeyPath, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      expect(await readFile(files.publicKeyPath, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
      expect(lines().some((l) => l.level === 40 && l.private_key_path === files.privateKeyPath)).toBe(true);

      const { keys } = ring.jwks();
      expect(keys).toHaveLength(1);
      const [jwk] = keys;
      expect(Object.keys(jwk!).sort()).toEqual(['alg', 'e', 'kid', 'kty', 'n', 'use']);
      expect(jwk).toMatchObject({ kty: 'RSA', e: 'AQAB', alg: 'RS256', use: 'sig', kid: ring.kid });
      expect(Buffer.from(jwk!.n, 'base64url')).toHaveLength(256);
      expect(ring.kid).toBe(await calculateJwkThumbprint({ kty: 'RSA', n: jwk!.n, e: jwk!.e }, 'sha256'));
    });

    it('signs tokens that verify against its JWKS', async () => {
      const ring = await loadKeyRing(files);
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: ring.kid }).setIssuer('i').sign(ring.signingKey);
      const { protectedHeader } = await jwtVerify(token, createLocalJWKSet(ring.jwks()), { issuer: 'i' });
      expect(protectedHeader.kid).toBe(ring.kid);
    });

    it('loads the same pair (same kid) on the next start', async () => {
      const first = await loadKeyRing(files);
      const privatePem = await readFile(files.privateKeyPath, 'utf8');
      const second = await loadKeyRing({ ...files, generate: false });
      expect(second.kid).toBe(first.kid);
      expect(second.jwks()).toEqual(first.jwks());
      expect(await readFile(files.privateKeyPath, 'utf8')).toBe(privatePem);
    });

    it.each(['private', 'public'] as const)('refuses to start when only the %s key file is missing', async (which) => {
      await loadKeyRing(files);
      const missing = which === 'private' ? files.privateKeyPath : files.publicKeyPath;
      await rm(missing);
      const old = new Date(Date.now() - 60_000); // left so, not being written by another instance
      for (const f of [files.privateKeyPath, files.publicKeyPath]) if (f !== missing) await utimes(f, old, old);
      await expect(loadKeyRing(files)).rejects.toThrow(`signing key pair incomplete: ${missing} is missing`);
      expect(await exists(missing)).toBe(false);
    });

    it('refuses to generate keys when generation is off (the default in production)', async () => {
      await expect(loadKeyRing({ ...files, generate: false })).rejects.toThrow(/signing keys not found: .* must be provisioned/);
      expect(await exists(files.privateKeyPath)).toBe(false);
      expect(await exists(files.publicKeyPath)).toBe(false);
    });

    it('agrees on one pair when several instances start at once on one key volume', async () => {
      const rings = await Promise.all(Array.from({ length: 6 }, () => loadKeyRing(files)));
      expect(new Set(rings.map((r) => r.kid)).size).toBe(1);
      expect((await loadKeyRing({ ...files, generate: false })).kid).toBe(rings[0]!.kid);
      expect((await readdir(path.dirname(files.privateKeyPath))).sort()).toEqual(['private_key.pem', 'public_key.pem']);
    });

    it('refuses a public key that does not belong to the private key', async () => {
      await loadKeyRing(files);
      const other = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
      await writeFile(files.privateKeyPath, await exportPKCS8(other.privateKey));
      await expect(loadKeyRing(files)).rejects.toThrow('is not the public key of');
    });

    it('names the file that is not a PEM key', async () => {
      await loadKeyRing(files);
      await writeFile(files.privateKeyPath, 'garbage');
      await expect(loadKeyRing(files)).rejects.toThrow(`${files.privateKeyPath} is not a PKCS8 PEM RSA private key`);
    });
  });
});
