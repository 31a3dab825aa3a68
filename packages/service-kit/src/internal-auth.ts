/**
 * The shared internal key between services (`X-Internal-Auth`): compared in constant time, never
 * logged (the logger redacts the header and the setting).
 */
import { hash, timingSafeEqual } from 'node:crypto';

export const INTERNAL_AUTH_HEADER = 'x-internal-auth';

const digest = (value: string): Buffer => hash('sha256', value, 'buffer');

/** The expected key's digest, computed once per key (a service has one): one hash per request, not two. */
let expectedKey: string | undefined;
let expectedDigest: Buffer | undefined;

/** Constant-time comparison (hashing first makes the lengths equal, so length leaks nothing either). */
export function checkInternalKey(presented: string | string[] | undefined, expected: string): boolean {
  if (typeof presented !== 'string' || presented.length === 0) return false;
  if (expectedDigest === undefined || expectedKey !== expected) {
    expectedKey = expected;
    expectedDigest = digest(expected);
  }
  return timingSafeEqual(digest(presented), expectedDigest);
}
