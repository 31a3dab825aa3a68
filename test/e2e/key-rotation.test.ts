/**
 * Signing-key rotation end to end (README "Key rotation"): publish the next key, switch signing to
 * it, retire the old one; the auth service restarts at each step, and a client that keeps calling
 * the gateway (and renewing its token as clients do) never sees a 401.
 */
import { describe, expect, inject, it } from 'vitest';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeProtectedHeader, exportPKCS8, exportSPKI, generateKeyPair } from 'jose';
import { startStack } from '../helpers/stack.ts';

describe('signing key rotation', () => {
  it('never answers 401 to a client while the key is published, switched and retired', async () => {
    const stack = await startStack({
      databaseUrl: inject('databaseUrl'),
      env: { gateway: { GATEWAY__JWKS_MAX_AGE: '1', GATEWAY__JWKS_REFETCH_COOLDOWN: '0' } },
    });
    const keysDir = path.join(stack.dataDir, 'auth', 'keys');
    const a = { priv: path.join(keysDir, 'private_key.pem'), pub: path.join(keysDir, 'public_key.pem') };
    const b = { priv: path.join(stack.dataDir, 'next', 'private_key.pem'), pub: path.join(stack.dataDir, 'next', 'public_key.pem') };
    const next = await generateKeyPair('RS256', { extractable: true });
    await mkdir(path.dirname(b.priv), { recursive: true });
    await writeFile(b.priv, await exportPKCS8(next.privateKey), { mode: 0o600 });
    await writeFile(b.pub, await exportSPKI(next.publicKey));

    let token = await stack.token();
    const oldKid = decodeProtectedHeader(token).kid;
    const statuses = new Map<number, number>();
    let running = true;
    let calls = 0;
    const client = (async () => {
      let lastRenewal = Date.now();
      while (running) {
        const res = await fetch(`${stack.url.gateway}/api/v1/sessions?limit=1`, { headers: { authorization: `Bearer ${token}` } });
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        calls++;
        if (Date.now() - lastRenewal > 150) {
          lastRenewal = Date.now();
          token = await stack.token().catch(() => token); // auth may be restarting: keep the current token
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    try {
      await pause(300);
      // 1. publish the next key (the old one still signs); wait for verifiers to pick it up
      await stack.restartAuth({ AUTH_SERVICE__ADDITIONAL_PUBLIC_KEY_PATHS: b.pub });
      await pause(1500);
      // 2. switch signing to the next key; the old public key stays published
      await stack.restartAuth({
        AUTH_SERVICE__PRIVATE_KEY_PATH: b.priv,
        AUTH_SERVICE__PUBLIC_KEY_PATH: b.pub,
        AUTH_SERVICE__ADDITIONAL_PUBLIC_KEY_PATHS: a.pub,
      });
      await pause(1000);
      const fresh = await stack.token();
      expect(decodeProtectedHeader(fresh).kid).not.toBe(oldKid);
      // 3. retire the old key. In production this waits for the longest lifetime of a token it
      //    signed; here the client simply renews before: its token is signed by the new key.
      token = fresh;
      await stack.restartAuth({ AUTH_SERVICE__PRIVATE_KEY_PATH: b.priv, AUTH_SERVICE__PUBLIC_KEY_PATH: b.pub });
      await pause(1500);
    } finally {
      running = false;
      await client;
    }
    try {
      expect(calls).toBeGreaterThan(20); // the client kept calling through every step (how often depends on the machine's load)
      expect(Object.fromEntries(statuses)).toEqual({ 200: calls });
      // the retired key no longer verifies anything
      const jwks = (await (await fetch(`${stack.url.auth}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
      expect(jwks.keys.map((k) => k.kid)).not.toContain(oldKid);
    } finally {
      await stack.close();
    }
  }, 60_000);
});
