/**
 * Telling "the database is away" from "the query is wrong": the first answers 503 (retry), the
 * second 500. No import of pg here: the HTTP error handler uses it without loading the driver.
 */
/** Socket-level failures of reaching the server (the name, the port, the connection). */
const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/**
 * Whether an error means the database cannot be reached or is going away, rather than a bad query:
 * a connection refused, reset or not resolvable, a connection that ended or timed out while being
 * opened (pg and pg-pool say so in the message only), SQLSTATE class 08 (connection exception) and
 * 57P01–57P03 (shutting down, crashed, not accepting connections yet). Such failures answer 503.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (CONNECTION_ERRNOS.has(code)) return true;
    if (/^08[0-9A-Z]{3}$/.test(code) || code === '57P01' || code === '57P02' || code === '57P03') return true;
  }
  if (/^(Connection terminated|timeout exceeded when trying to connect)/.test(err.message)) return true;
  return err.cause !== undefined && err.cause !== err && isDatabaseUnavailable(err.cause);
}
