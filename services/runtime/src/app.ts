/**
 * Agent runtime: sessions and their history in PostgreSQL, the agents (routing, tools, approvals)
 * and the conversation turns that stream their frames back as SSE, one turn per session at a time
 * across instances. Every route needs the internal key (the gateway calls it).
 */
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createService, migrate, openDatabase, openRedis, pingRedis, type Service } from '@codelab/service-kit';
import type { RuntimeConfig } from './config.ts';
import { LlmClient } from './llm-client.ts';
import { createRuntimeMetrics } from './metrics.ts';
import { registerAgentStream } from './routes/agent-stream.ts';
import { registerAgentRoutes } from './routes/agents.ts';
import { registerApprovalRoutes } from './routes/approvals.ts';
import { registerEventRoutes } from './routes/events.ts';
import { registerFrameRoutes } from './routes/frames.ts';
import { registerSessionRoutes } from './routes/sessions.ts';
import { registeredAgents } from './agents/definitions.ts';
import { ApprovalPolicy } from './hitl/policy.ts';
import { AgentContextStore } from './store/agent-context.ts';
import { ToolCallStore } from './store/tool-calls.ts';
import { startApprovalExpiry } from './turn/approval-expiry.ts';
import { MemoryFrameLog, RedisFrameLog, type FrameLog } from './turn/frame-log.ts';
import { InterruptedTurns } from './turn/interrupted-turns.ts';
import { RunningTurns } from './turn/running-turns.ts';
import { HistoryCache } from './turn/history-cache.ts';
import { SessionLeases } from './turn/session-lease.ts';
import { FrameClock } from './turn/token-frames.ts';
import type { ConversationServices } from './turn/turn-context.ts';
import { EventReports } from './store/event-reports.ts';
import { EventWriter } from './store/event-writer.ts';
import { SessionStore } from './store/sessions.ts';

const MIGRATIONS = fileURLToPath(new URL('./migrations', import.meta.url));

export async function buildApp(config: RuntimeConfig, deps: { logger?: Logger } = {}): Promise<Service> {
  const service = createService({ name: 'runtime', ...config, logger: deps.logger, requireInternalKey: config.internalApiKey });
  const { app, logger } = service;
  const db = await openDatabase({
    service: 'runtime',
    url: config.dbUrl,
    urlSetting: 'AGENT_RUNTIME__DB_URL',
    dataDir: config.dataDir,
    poolMax: config.dbPoolSize,
    logger,
    metrics: service.metrics,
  });
  app.addHook('onClose', () => db.close());
  await migrate(db, 'runtime', MIGRATIONS, logger);
  service.addReadinessCheck('postgres', () => db.ping());

  // Redis, when configured, is what several runtime instances share: the frame log that lets a
  // client resume on any instance, and the channel that carries a cancel to the instance running
  // the turn. Without it (the embedded single-process mode) both live in this process.
  let redis: Redis | undefined;
  if (config.redisUrl) {
    const r = openRedis(config.redisUrl, logger);
    redis = r;
    app.addHook('onClose', async () => void r.disconnect());
    service.addReadinessCheck('redis', () => pingRedis(r));
  }

  const metrics = createRuntimeMetrics(service.metrics);
  const llm = new LlmClient({
    baseUrl: config.llmProxyUrl,
    internalApiKey: config.internalApiKey,
    model: config.llmModel,
    firstByteTimeoutMs: config.llmFirstByteTimeout * 1000,
    idleTimeoutMs: config.llmIdleTimeout * 1000,
    connections: config.llmProxyConnections,
    h2cStreams: config.llmProxyH2cStreams,
    // the turn's tokens leave in frames of this interval: the llm-proxy may send them so too
    writeIntervalMs: config.tokenFrameInterval * 1000,
    serviceMetrics: service.metrics,
    metrics,
    log: logger,
  });
  app.addHook('onClose', () => llm.close());
  service.addReadinessCheck('llm-proxy', () => llm.checkHealth());

  const store = new SessionStore(db, { idleTimeoutSeconds: config.sessionIdleTimeout });
  registerSessionRoutes(app, { store });
  // Durable events and LLM usage (the engine records into it; never fails a turn). Its writes in
  // flight finish before the pool closes (onClose hooks run last-registered first).
  const events = new EventWriter(db, { logger, metrics: service.metrics });
  app.addHook('onClose', () => events.drain());
  const agentContext = new AgentContextStore(db);
  registerAgentRoutes(app, { contexts: agentContext, events, multiAgent: config.multiAgentMode });
  registerApprovalRoutes(app, { db, store });
  registerEventRoutes(app, { events: new EventReports(db, events), store });
  const frameLog: FrameLog = redis
    ? new RedisFrameLog(redis, {
        maxFrames: config.frameLogSize,
        retentionSeconds: 24 * 3600,
        // lapses with the lease it is renewed with: a follower then asks the lease (interrupted-turns.ts)
        runningTtlMs: config.sessionLeaseTtl * 1000,
        logger,
        onError: () => metrics.frameLogErrors.inc(),
      })
    : new MemoryFrameLog({ maxFrames: config.frameLogSize });
  app.addHook('onClose', () => frameLog.close());
  const running = new RunningTurns(frameLog, redis, logger);
  await running.start();
  app.addHook('onClose', () => running.close());
  // A turn whose runtime died is found from its lapsed lease and closed once (interrupted-turns.ts).
  // Without Redis the frame log dies with this process: turns reserve their frame numbers in the row.
  const leaseTtlMs = config.sessionLeaseTtl * 1000;
  let interrupted: InterruptedTurns | undefined;
  const leases = new SessionLeases(db, {
    ttlMs: leaseTtlMs,
    metrics,
    onRenew: (sessionId, token) => frameLog.setRunning(sessionId, true, token),
    reserveSeqs: frameLog.shared ? 0 : 1000,
    onTakeover: (sessionId, prev) => interrupted!.closeTakenOver(sessionId, prev),
    historyCache: new HistoryCache(config.historyCacheMb * 1024 * 1024, {
      bytes: metrics.historyCacheBytes,
      sessions: metrics.historyCacheSessions,
    }),
  });
  interrupted = new InterruptedTurns({ leases, frameLog, metrics, logger, leaseTtlMs });
  const services: ConversationServices = {
    db,
    sessions: store,
    toolCalls: new ToolCallStore(db),
    agentContext,
    events,
    llm,
    metrics,
    policy: ApprovalPolicy.load({ file: config.hitlPolicyFile, inline: config.hitlPolicy }),
    frameLog,
    agents: new Map(registeredAgents(config.multiAgentMode).map((a) => [a.type, a])),
    multiAgentMode: config.multiAgentMode,
    approvalTimeoutMs: config.approvalTimeout * 1000,
    historyTokenBudget: config.historyTokenBudget,
    maxStepsPerTurn: config.maxStepsPerTurn,
    frameClock: new FrameClock(config.tokenFrameInterval * 1000, (n) => metrics.frameTickAnswers.observe(n)),
    // a turn's own stores, on its database fenced by its session lease (turn/fenced-db.ts)
    storesOn: (on, fence) => ({
      sessions: new SessionStore(on, { idleTimeoutSeconds: config.sessionIdleTimeout, fence }),
      toolCalls: new ToolCallStore(on),
      agentContext: new AgentContextStore(on),
    }),
  };
  const heartbeatMs = config.sseHeartbeatInterval * 1000;
  registerAgentStream(app, {
    services,
    store,
    leases,
    running,
    interrupted,
    heartbeatMs,
    lockTimeoutMs: config.sessionLockTimeout * 1000,
    isDraining: () => service.draining,
  });
  registerFrameRoutes(app, { store, interrupted, running, metrics, heartbeatMs });
  const expiry = startApprovalExpiry(services, leases, logger);
  app.addHook('onClose', () => expiry.stop());
  return service;
}
