/** Signing keys from the environment, additional public keys, and the rotation steps they make possible. */
import { readFile, utimes } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLocalJWKSet, jwtVerify, SignJWT } from 'jose';
import { silentLogger } from '@codelab/service-kit/testing';
import { loadKeyRing, type KeyFiles } from '../src/keys.ts';
import { tempDir } from './helpers.ts';

describe('key rotation', () => {
  let dir: string;
  let remove: () => Promise<void>;
  const pair = (name: string): KeyFiles => ({
    privateKeyPath: path.join(dir, name, 'private_key.pem'),
    publicKeyPath: path.join(dir, name, 'public_key.pem'),
    generate: true,
    logger: silentLogger(),
  });

  beforeEach(async () => {
    ({ dir, remove } = await tempDir());
  });
  afterEach(() => remove());

  it('publishes additional public keys in the JWKS, signing key first, and verifies tokens of every one', async () => {
    const a = await loadKeyRing(pair('a'));
    const b = await loadKeyRing(pair('b'));
    // step 1: A signs, B is published ahead of the switch
    const publishNext = await loadKeyRing({ ...pair('a'), additionalPublicKeyPaths: [pair('b').publicKeyPath] });
    expect(publishNext.kid).toBe(a.kid);
    expect(publishNext.jwks().keys.map((k) => k.kid)).toEqual([a.kid, b.kid]);
    // step 2: B signs, A stays published for the tokens it signed
    const switched = await loadKeyRing({ ...pair('b'), additionalPublicKeyPaths: [pair('a').publicKeyPath] });
    expect(switched.kid).toBe(b.kid);
    expect(switched.jwks().keys.map((k) => k.kid)).toEqual([b.kid, a.kid]);
    const jwks = createLocalJWKSet(switched.jwks());
    for (const ring of [a, b]) {
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: ring.kid }).setIssuer('i').sign(ring.signingKey);
      await expect(jwtVerify(token, jwks, { issuer: 'i' })).resolves.toBeTruthy();
    }
    expect(switched.verificationKeys.map((k) => k.kid)).toEqual([b.kid, a.kid]);
    // step 3: A retired
    const retired = await loadKeyRing(pair('b'));
    expect(retired.jwks().keys.map((k) => k.kid)).toEqual([b.kid]);
    const old = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: a.kid }).setIssuer('i').sign(a.signingKey);
    await expect(jwtVerify(old, createLocalJWKSet(retired.jwks()), { issuer: 'i' })).rejects.toThrow();
  });

  it('lists a key once, and never the signing key twice', async () => {
    const a = await loadKeyRing(pair('a'));
    const ring = await loadKeyRing({ ...pair('a'), additionalPublicKeyPaths: [pair('a').publicKeyPath, pair('a').publicKeyPath] });
    expect(ring.jwks().keys.map((k) => k.kid)).toEqual([a.kid]);
  });

  it('refuses to start when an additional key is missing or not a public key', async () => {
    await loadKeyRing(pair('a'));
    await expect(loadKeyRing({ ...pair('a'), additionalPublicKeyPaths: [path.join(dir, 'nope.pem')] })).rejects.toThrow(
      /additional public key .*nope\.pem does not exist/,
    );
    await expect(loadKeyRing({ ...pair('a'), additionalPublicKeyPaths: [pair('a').privateKeyPath] })).rejects.toThrow(
      /is not an SPKI PEM RSA public key/,
    );
  });

  it('takes the signing pair from PEM text (the environment), escaped newlines included, and never writes files', async () => {
    const a = await loadKeyRing(pair('a'));
    const privateKeyPem = await readFile(pair('a').privateKeyPath, 'utf8');
    const publicKeyPem = await readFile(pair('a').publicKeyPath, 'utf8');
    const target = pair('from-env');
    const ring = await loadKeyRing({ ...target, generate: false, privateKeyPem: privateKeyPem.replace(/\n/g, '\\n'), publicKeyPem });
    expect(ring.kid).toBe(a.kid);
    expect(ring.signingKeyCreatedAt).toBeUndefined();
    await expect(readFile(target.privateKeyPath)).rejects.toThrow(/ENOENT/);
    await expect(loadKeyRing({ ...target, privateKeyPem })).rejects.toThrow(
      /set both AUTH_SERVICE__PRIVATE_KEY and AUTH_SERVICE__PUBLIC_KEY/,
    );
  });

  it('reports when the signing key was made (its file time), for the rotation-age alert', async () => {
    await loadKeyRing(pair('a'));
    const made = new Date('2026-01-02T03:04:05Z');
    await utimes(pair('a').privateKeyPath, made, made);
    expect((await loadKeyRing(pair('a'))).signingKeyCreatedAt?.toISOString()).toBe(made.toISOString());
  });
});
