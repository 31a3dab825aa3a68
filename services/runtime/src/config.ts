import { commonSettings, defineSettings, H2C_MAX_STREAMS, readConfig, setting } from '@codelab/service-kit/boot';

export const runtimeSettings = defineSettings({
  ...commonSettings({ port: 8001 }),
  /** PostgreSQL URL; unset: the shared embedded engine of CODELAB_DATA_DIR/pg. */
  dbUrl: setting.url({ protocols: ['postgres:', 'postgresql:'], secret: true }),
  dbPoolSize: setting.int({ min: 1, max: 200, fallback: 10 }),
  /** Optional: the frame log and cancels shared by every instance; /ready checks it. Unset: this process's memory. */
  redisUrl: setting.url({ protocols: ['redis:', 'rediss:'], secret: true }),
  llmProxyUrl: setting.url({ fallback: 'http://127.0.0.1:8002' }),
  llmModel: setting.string({ fallback: 'fake-llm' }),
  /** Connections to the llm-proxy (with LLM_PROXY_H2C_STREAMS: their product bounds the LLM calls in flight). */
  llmProxyConnections: setting.int({ min: 1, max: 65_536, fallback: 1024 }),
  /**
   * LLM calls one connection to the llm-proxy carries at once, over HTTP/2 without TLS (h2c): the
   * chunks of the calls sharing it arrive in one socket read. 0: HTTP/1.1, a connection per call
   * (for an LLM_PROXY_URL that is not this platform's llm-proxy; one that refuses h2c is called over
   * HTTP/1.1 anyway, with a warning).
   */
  llmProxyH2cStreams: setting.int({ min: 0, max: H2C_MAX_STREAMS, fallback: 32 }),
  /** Longest wait for the LLM's response headers, and then for each next chunk (seconds). */
  llmFirstByteTimeout: setting.number({ min: 0.1, max: 3600, fallback: 60 }),
  llmIdleTimeout: setting.number({ min: 0.1, max: 3600, fallback: 120 }),
  /** SSE keep-alive comment interval while a turn is silent (seconds). */
  sseHeartbeatInterval: setting.number({ min: 0.05, max: 300, fallback: 15 }),
  /** Seconds a tool call waits for a human's approval before it is rejected as `expired`. */
  approvalTimeout: setting.number({ min: 0.1, max: 7 * 86_400, fallback: 300 }),
  /**
   * Approval policy: a JSON file (`{"default": false, "tools": {"write_file": true, …}, "agents": {"architect": {"write_file": false}}}`)
   * or the same JSON inline in AGENT_RUNTIME__HITL_POLICY; unset keeps upstream's defaults.
   */
  hitlPolicyFile: setting.string(),
  hitlPolicy: setting.string(),
  /** Estimated tokens of history sent to the LLM with each call (oldest turns are left out first). */
  historyTokenBudget: setting.int({ min: 256, max: 2_000_000, fallback: 16_000 }),
  /**
   * Memory (MB, estimated) for the histories of recent sessions, kept between their turns so that a
   * turn reads only the messages stored since (turn/history-cache.ts); 0: every turn reads the whole history.
   */
  historyCacheMb: setting.number({ min: 0, max: 65_536, fallback: 64 }),
  /**
   * How long an answer's tokens are gathered into one frame at most (seconds): the first token
   * leaves at once, the tokens that come within the interval after a frame leave together in the
   * next one, at the runtime's shared frame tick (token-frames.ts). 0: a frame per token.
   */
  tokenFrameInterval: setting.number({ min: 0, max: 1, fallback: 0.03 }),
  /** LLM calls one inbound message may cause (agent hops, refused tools) before the turn stops. */
  maxStepsPerTurn: setting.int({ min: 1, max: 100, fallback: 8 }),
  /** Seconds a turn waits for another turn of the same session (any instance) to finish. */
  sessionLockTimeout: setting.number({ min: 0.1, max: 600, fallback: 30 }),
  /** Seconds a session lease lasts without renewal (a crashed instance's turn frees its session after it). */
  sessionLeaseTtl: setting.number({ min: 1, max: 3600, fallback: 15 }),
  /**
   * Seconds without a message after which a session is inactive (`is_active: false`, left out by
   * `GET /sessions?active_only=true`), unless a turn runs or a tool call waits for the IDE or a human.
   */
  sessionIdleTimeout: setting.number({ min: 1, max: 365 * 86_400, fallback: 3600 }),
  /** Frames kept per session for clients that reconnect (in Redis when configured, else in memory). */
  frameLogSize: setting.int({ min: 10, max: 100_000, fallback: 2000 }),
  /** Multi-agent mode: orchestrator, coder, architect, debug, ask; false: orchestrator and universal. */
  multiAgentMode: setting.bool({ fallback: true }),
});

export function readRuntimeConfig(env: NodeJS.ProcessEnv = process.env) {
  return readConfig('AGENT_RUNTIME', runtimeSettings, env);
}

export type RuntimeConfig = ReturnType<typeof readRuntimeConfig>;
