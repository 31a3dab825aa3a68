/**
 * llm-proxy errors, rendered as OpenAI error objects (`{ error: { message, type, param, code } }`)
 * with the matching HTTP status, so OpenAI SDKs raise their usual exceptions. Once a stream has
 * started, the same object is the stream's last SSE event (and no `[DONE]` follows).
 */
import type { OpenAIErrorBody } from '@codelab/protocol';

export interface OpenAIErrorDef {
  status: number;
  type: string;
  code: string;
}

export const LLMP_ERRORS = {
  LLMP_ERR_INVALID_REQUEST: { status: 400, type: 'invalid_request_error', code: 'invalid_request' },
  LLMP_ERR_UNAUTHORIZED: { status: 401, type: 'authentication_error', code: 'invalid_api_key' },
  LLMP_ERR_MODEL_NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'model_not_found' },
  LLMP_ERR_RATE_LIMITED: { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  LLMP_ERR_OVERLOADED: { status: 429, type: 'rate_limit_error', code: 'proxy_overloaded' },
  LLMP_ERR_INTERNAL: { status: 500, type: 'server_error', code: 'internal_error' },
  LLMP_ERR_UPSTREAM_ERROR: { status: 502, type: 'server_error', code: 'upstream_error' },
  LLMP_ERR_UPSTREAM_UNAVAILABLE: { status: 503, type: 'server_error', code: 'upstream_unavailable' },
  LLMP_ERR_QUEUE_TIMEOUT: { status: 503, type: 'server_error', code: 'queue_timeout' },
  LLMP_ERR_UPSTREAM_TIMEOUT: { status: 504, type: 'server_error', code: 'upstream_timeout' },
} as const satisfies Record<string, OpenAIErrorDef>;

export type LlmProxyErrorCode = keyof typeof LLMP_ERRORS;

export class OpenAIError extends Error {
  readonly def: OpenAIErrorDef;
  readonly param: string | null;
  /** Seconds for a `Retry-After` header. */
  readonly retryAfter: number | undefined;
  constructor(code: LlmProxyErrorCode, message: string, param: string | null = null, opts: { retryAfter?: number; cause?: unknown } = {}) {
    super(message, opts.cause ? { cause: opts.cause } : undefined);
    this.def = LLMP_ERRORS[code];
    this.param = param;
    this.retryAfter = opts.retryAfter;
  }
  get statusCode(): number {
    return this.def.status;
  }
  toJSON(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.def.type, param: this.param, code: this.def.code } };
  }
}

/** The proxy's error for an HTTP status an upstream (or the mock's fault injection) answered with. */
export function errorForStatus(status: number, message: string, retryAfter?: number): OpenAIError {
  const code: LlmProxyErrorCode =
    status === 400 || status === 422
      ? 'LLMP_ERR_INVALID_REQUEST'
      : status === 401 || status === 403
        ? 'LLMP_ERR_UNAUTHORIZED'
        : status === 404
          ? 'LLMP_ERR_MODEL_NOT_FOUND'
          : status === 429
            ? 'LLMP_ERR_RATE_LIMITED'
            : status === 503
              ? 'LLMP_ERR_UPSTREAM_UNAVAILABLE'
              : status === 504
                ? 'LLMP_ERR_UPSTREAM_TIMEOUT'
                : status === 500
                  ? 'LLMP_ERR_INTERNAL'
                  : 'LLMP_ERR_UPSTREAM_ERROR';
  return new OpenAIError(code, message, null, retryAfter !== undefined ? { retryAfter } : {});
}
