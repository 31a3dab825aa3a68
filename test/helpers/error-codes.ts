/**
 * Every error code the platform answers with: each service's table, the OAuth errors, and the
 * codes nginx answers with itself in the Compose stack (deploy/nginx/nginx.conf). What the README's
 * error table and docs/troubleshooting.md may name.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { kitErrors } from '@codelab/service-kit';
import { OAUTH_ERROR_TABLE } from '@codelab/auth/errors';
import { gatewayErrors } from '@codelab/gateway/errors';
import { LLMP_ERRORS } from '@codelab/llm-proxy/errors';
import { runtimeErrors } from '@codelab/runtime/errors';
import { REPO_ROOT } from './processes.ts';

export function platformErrorCodes(): string[] {
  const nginx = readFileSync(path.join(REPO_ROOT, 'deploy/nginx/nginx.conf'), 'utf8');
  return [
    ...Object.keys(kitErrors),
    ...Object.keys(gatewayErrors),
    ...Object.keys(runtimeErrors),
    ...Object.keys(LLMP_ERRORS),
    ...Object.keys(OAUTH_ERROR_TABLE),
    ...[...nginx.matchAll(/"code":"([A-Z_]+)"/g)].map((m) => m[1]!),
  ];
}
