/**
 * The shared internal key between services (`X-Internal-Auth`): compared in constant time, never
 * logged (the logger redacts the header and the setting).
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export const INTERNAL_AUTH_HEADER = 'x-internal-auth';

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/** Constant-time comparison (hashing first makes the lengths equal, so length leaks nothing either). */
export function checkInternalKey(presented: string | string[] | undefined, expected: string): boolean {
  if (typeof presented !== 'string' || presented.length === 0) return false;
  return timingSafeEqual(digest(presented), digest(expected));
}
