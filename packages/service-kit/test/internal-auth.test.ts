import { describe, expect, it } from 'vitest';
import { checkInternalKey, INTERNAL_AUTH_HEADER } from '../src/internal-auth.ts';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';

describe('internal-auth', () => {
  describe('INTERNAL_AUTH_HEADER', () => {
    it('is the lower-case header name node gives', () => {
      expect(INTERNAL_AUTH_HEADER).toBe('x-internal-auth');
    });
  });

  describe('checkInternalKey', () => {
    it('accepts the expected key', () => {
      expect(checkInternalKey(TEST_INTERNAL_KEY, TEST_INTERNAL_KEY)).toBe(true);
      expect(checkInternalKey('ünïcödé-key-0123456789', 'ünïcödé-key-0123456789')).toBe(true);
    });

    it('refuses a different key of the same length', () => {
      const other = `${TEST_INTERNAL_KEY.slice(0, -1)}X`;
      expect(other).toHaveLength(TEST_INTERNAL_KEY.length);
      expect(checkInternalKey(other, TEST_INTERNAL_KEY)).toBe(false);
    });

    it('refuses keys of other lengths without throwing', () => {
      expect(checkInternalKey(TEST_INTERNAL_KEY.slice(0, -1), TEST_INTERNAL_KEY)).toBe(false);
      expect(checkInternalKey(`${TEST_INTERNAL_KEY}0`, TEST_INTERNAL_KEY)).toBe(false);
      expect(checkInternalKey('x', TEST_INTERNAL_KEY)).toBe(false);
      expect(checkInternalKey('x'.repeat(10_000), TEST_INTERNAL_KEY)).toBe(false);
    });

    it('refuses a missing or empty header', () => {
      expect(checkInternalKey(undefined, TEST_INTERNAL_KEY)).toBe(false);
      expect(checkInternalKey('', TEST_INTERNAL_KEY)).toBe(false);
    });

    it('refuses a header sent more than once, even when one copy is right', () => {
      expect(checkInternalKey([TEST_INTERNAL_KEY], TEST_INTERNAL_KEY)).toBe(false);
      expect(checkInternalKey([TEST_INTERNAL_KEY, TEST_INTERNAL_KEY], TEST_INTERNAL_KEY)).toBe(false);
      expect(checkInternalKey([], TEST_INTERNAL_KEY)).toBe(false);
    });

    it('follows a change of the expected key (its digest is computed once per key, not reused for another)', () => {
      expect(checkInternalKey('first-key-0123456789', 'first-key-0123456789')).toBe(true);
      expect(checkInternalKey('first-key-0123456789', 'second-key-0123456789')).toBe(false);
      expect(checkInternalKey('second-key-0123456789', 'second-key-0123456789')).toBe(true);
      expect(checkInternalKey('second-key-0123456789', 'first-key-0123456789')).toBe(false);
      expect(checkInternalKey('first-key-0123456789', 'first-key-0123456789')).toBe(true);
    });

    it('compares case and whitespace exactly', () => {
      expect(checkInternalKey(TEST_INTERNAL_KEY.toUpperCase(), TEST_INTERNAL_KEY)).toBe(false);
      expect(checkInternalKey(` ${TEST_INTERNAL_KEY}`, TEST_INTERNAL_KEY)).toBe(false);
    });
  });
});
