/**
 * `application/x-www-form-urlencoded` bodies for the OAuth endpoints (no @fastify/formbody here).
 * Registered in the OAuth routes' own scope, where it is the only parser: a JSON or any other body
 * fails with FST_ERR_CTP_INVALID_MEDIA_TYPE, which the route renders as invalid_request.
 */
import type { FastifyInstance } from 'fastify';
import { oauthErrors } from './errors.ts';

export type FormBody = Readonly<Record<string, string>>;

/** Parses a form body; a repeated parameter is invalid_request (RFC 6749 §3.1, §3.2). */
function parseFormBody(body: string): FormBody {
  const form: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of new URLSearchParams(body)) {
    if (Object.hasOwn(form, name)) throw oauthErrors.invalid_request(`Parameter '${name.slice(0, 64)}' must not be repeated`);
    form[name] = value;
  }
  return form;
}

/** Makes form bodies the only kind this (encapsulated) scope accepts. */
export function acceptOnlyFormBodies(scope: FastifyInstance, bodyLimit: number): void {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit }, (_request, body, done) => {
    try {
      done(null, parseFormBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}

/** The parsed form of a request (an empty one when it had no body). */
export function formOf(body: unknown): FormBody {
  return body !== null && typeof body === 'object' ? (body as FormBody) : {};
}
