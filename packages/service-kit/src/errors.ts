/**
 * Error tables. Each service declares its codes once (`defineErrors`), call sites throw only table
 * entries, and the shared error handler renders them as `{ error: { code, message } }` with the
 * table's HTTP status (services with another edge format, OAuth or OpenAI, render their own).
 */

export interface ErrorDef {
  readonly status: number;
  readonly message: string;
  /** WebSocket close code, where the error ends a connection. */
  readonly closeCode?: number;
}

export class AppError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly closeCode: number | undefined;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: string, def: ErrorDef, message?: string, details?: Record<string, unknown>) {
    super(message ?? def.message);
    this.name = 'AppError';
    this.code = code;
    this.statusCode = def.status;
    this.closeCode = def.closeCode;
    this.details = details;
  }
  toJSON(): { error: { code: string; message: string; details?: Record<string, unknown> } } {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

export type ErrorFactory = ((message?: string, details?: Record<string, unknown>) => AppError) & { code: string; def: ErrorDef };

/** Turns a table of definitions into factories: `errors.GW_ERR_X('message')` returns an AppError. */
export function defineErrors<T extends Record<string, ErrorDef>>(table: T): { [K in keyof T]: ErrorFactory } {
  const out: Record<string, ErrorFactory> = {};
  for (const [code, def] of Object.entries(table)) {
    const f = ((message?: string, details?: Record<string, unknown>) => new AppError(code, def, message, details)) as ErrorFactory;
    f.code = code;
    f.def = def;
    out[code] = f;
  }
  return out as { [K in keyof T]: ErrorFactory };
}

/** Codes the shared kit itself raises, in every service. */
export const kitErrors = defineErrors({
  ERR_VALIDATION: { status: 400, message: 'The request is not valid' },
  ERR_UNAUTHORIZED: { status: 401, message: 'Authentication required' },
  ERR_NOT_FOUND: { status: 404, message: 'Route not found' },
  ERR_PAYLOAD_TOO_LARGE: { status: 413, message: 'Request body too large' },
  ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported content type' },
  ERR_SHUTTING_DOWN: { status: 503, message: 'The service is shutting down' },
  ERR_DATABASE_UNAVAILABLE: { status: 503, message: 'The database cannot be reached; retry shortly' },
  ERR_INTERNAL: { status: 500, message: 'Internal server error' },
});
