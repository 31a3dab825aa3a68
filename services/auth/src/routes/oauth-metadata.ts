/**
 * GET /.well-known/oauth-authorization-server (RFC 8414): what standard OAuth client libraries
 * configure themselves from.
 *
 * `issuer` is AUTH_SERVICE__JWT_ISSUER, the `iss` of every token: RFC 8414 §3.3 requires it to be
 * the issuer identifier the client started discovery from, so a deployment serves this document
 * at `<issuer>/.well-known/oauth-authorization-server` (for `https://auth.codelab.local`, nginx
 * routes that host here). The endpoint URLs are built from AUTH_SERVICE__PUBLIC_URL, the address
 * clients reach the service at, or `http://127.0.0.1:<listening port>` when it is unset (never from
 * the request's Host header, which a client controls). For an issuer with a path, the document is
 * also served at the path §3.1 derives (`/.well-known/oauth-authorization-server/<path>`).
 *
 * There is no authorization endpoint (no authorization_code grant), so `response_types_supported`,
 * which §2 requires, is empty.
 */
import type { FastifyInstance } from 'fastify';
import { KNOWN_SCOPES, SUPPORTED_GRANT_TYPES } from '../clients.ts';
import type { AuthConfig } from '../config.ts';

const METADATA_PATH = '/.well-known/oauth-authorization-server';
const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'none'];
const MAX_AGE_SECONDS = 300;

interface AuthorizationServerMetadata {
  issuer: string;
  token_endpoint: string;
  revocation_endpoint: string;
  jwks_uri: string;
  grant_types_supported: string[];
  response_types_supported: string[];
  token_endpoint_auth_methods_supported: string[];
  revocation_endpoint_auth_methods_supported: string[];
  scopes_supported: string[];
}

/** The metadata path(s) for an issuer: the root one, and the §3.1 one when the issuer has a path. */
export function metadataPaths(issuer: string): string[] {
  let pathname = '';
  try {
    pathname = new URL(issuer).pathname.replace(/\/+$/, '');
  } catch {
    // Not a URL: only the root document.
  }
  return pathname ? [METADATA_PATH, `${METADATA_PATH}${pathname}`] : [METADATA_PATH];
}

export function registerOAuthMetadataRoutes(app: FastifyInstance, config: Pick<AuthConfig, 'jwtIssuer' | 'publicUrl' | 'port'>): void {
  const baseUrl = (): string => {
    if (config.publicUrl) return config.publicUrl;
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    return `http://127.0.0.1:${port}`;
  };
  for (const url of metadataPaths(config.jwtIssuer)) {
    app.get(url, { config: { public: true } }, async (_request, reply) => {
      const base = baseUrl();
      const metadata: AuthorizationServerMetadata = {
        issuer: config.jwtIssuer,
        token_endpoint: `${base}/oauth/token`,
        revocation_endpoint: `${base}/oauth/revoke`,
        jwks_uri: `${base}/.well-known/jwks.json`,
        grant_types_supported: [...SUPPORTED_GRANT_TYPES],
        response_types_supported: [],
        token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
        revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
        scopes_supported: [...KNOWN_SCOPES],
      };
      return reply.header('cache-control', `public, max-age=${MAX_AGE_SECONDS}`).send(metadata);
    });
  }
}
