import { describe, expect, it } from 'vitest';
import { hashPassword, SCRYPT_PARAMS, verifyDummy, verifyPassword } from '../src/passwords.ts';

async function median(fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    await fn();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[1]!;
}

describe('passwords', () => {
  describe('hashPassword', () => {
    it('writes a self-describing scrypt hash with a fresh salt', async () => {
      const [a, b] = await Promise.all([hashPassword('correct horse'), hashPassword('correct horse')]);
      expect(a).toMatch(new RegExp(`^scrypt\\$${SCRYPT_PARAMS.N}\\$8\\$1\\$[A-Za-z0-9+/=]+\\$[A-Za-z0-9+/=]+$`));
      expect(a).not.toBe(b);
    });
  });

  describe('verifyPassword', () => {
    it('accepts the password and rejects any other', async () => {
      const stored = await hashPassword('correct horse');
      expect(await verifyPassword('correct horse', stored)).toBe(true);
      expect(await verifyPassword('correct horsf', stored)).toBe(false);
      expect(await verifyPassword('', stored)).toBe(false);
    });

    it('rejects a malformed or foreign hash instead of throwing', async () => {
      expect(await verifyPassword('x', 'not-a-hash')).toBe(false);
      expect(await verifyPassword('x', '$2b$12$abcdefghijklmnopqrstuv')).toBe(false);
      expect(await verifyPassword('x', 'scrypt$3$8$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5')).toBe(false);
      expect(await verifyPassword('x', `scrypt$${2 ** 30}$8$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5`)).toBe(false);
    });

    it('verifies hashes written with other parameters', async () => {
      // A hash of "pw" with N=1024, r=8, p=1 (as a cheaper legacy setting would have written it).
      const { scryptSync } = await import('node:crypto');
      const salt = Buffer.from('0123456789abcdef');
      const key = scryptSync('pw', salt, 32, { N: 1024, r: 8, p: 1 });
      const stored = `scrypt$1024$8$1$${salt.toString('base64')}$${key.toString('base64')}`;
      expect(await verifyPassword('pw', stored)).toBe(true);
      expect(await verifyPassword('pw2', stored)).toBe(false);
    });
  });

  describe('verifyDummy', () => {
    it('returns false and costs about as much as a real verification', async () => {
      const stored = await hashPassword('secret');
      expect(await verifyDummy('secret')).toBe(false);
      const real = await median(() => verifyPassword('wrong', stored));
      const dummy = await median(() => verifyDummy('wrong'));
      expect(dummy / real).toBeGreaterThan(0.25);
      expect(dummy / real).toBeLessThan(4);
    });
  });
});
