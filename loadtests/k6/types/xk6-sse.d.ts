/**
 * `k6/x/sse`: Server-Sent Events for k6, from the phymbert/xk6-sse extension (k6 core has no SSE).
 * Only a k6 built with it has the module: `xk6 build --with github.com/phymbert/xk6-sse`.
 * Shapes from the extension's sse.go: `sse.open()` blocks the VU until the stream ends or the
 * client is closed, and answers the HTTP status (or an `error` when the request failed).
 */
declare module 'k6/x/sse' {
  /** One event of the stream; `data` has its `data:` lines joined, trailing newlines removed. */
  export interface SseEvent {
    id: string;
    name: string;
    data: string;
    comment: string;
  }

  /** A read or connection error (a Go error: its text is `error()`). */
  export interface SseError {
    error(): string;
  }

  export interface SseClient {
    on(event: 'open', handler: () => void): void;
    on(event: 'event', handler: (event: SseEvent) => void): void;
    on(event: 'error', handler: (error: SseError) => void): void;
    /** Ends the stream: `sse.open()` returns. */
    close(): void;
  }

  export interface SseParams {
    /** Default GET. */
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    tags?: Record<string, string>;
  }

  export interface SseResponse {
    url: string;
    /** 0 when no response arrived (then `error` says why). */
    status: number;
    headers: Record<string, string>;
    error: string;
  }

  interface Sse {
    open(url: string, params: SseParams, setup: (client: SseClient) => void): SseResponse;
    open(url: string, setup: (client: SseClient) => void): SseResponse;
  }

  const sse: Sse;
  export default sse;
}
