/**
 * llm-proxy errors, rendered as OpenAI error objects (`{ error: { message, type, param, code } }`)
 * with the matching HTTP status, so OpenAI SDKs raise their usual exceptions.
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
  LLMP_ERR_INTERNAL: { status: 500, type: 'server_error', code: 'internal_error' },
} as const satisfies Record<string, OpenAIErrorDef>;

export type LlmProxyErrorCode = keyof typeof LLMP_ERRORS;

export class OpenAIError extends Error {
  readonly def: OpenAIErrorDef;
  readonly param: string | null;
  constructor(code: LlmProxyErrorCode, message: string, param: string | null = null) {
    super(message);
    this.def = LLMP_ERRORS[code];
    this.param = param;
  }
  get statusCode(): number {
    return this.def.status;
  }
  toJSON(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.def.type, param: this.param, code: this.def.code } };
  }
}
