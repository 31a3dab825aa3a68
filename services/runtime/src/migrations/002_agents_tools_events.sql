-- The agent conversation: agent switches, tool calls with their approvals, the session lease that
-- serializes turns across runtime instances, durable events (metrics, audit log) and LLM usage.

-- Turn lease: one runtime instance at a time runs a turn of a session. Taken and renewed by single
-- conditional UPDATEs (works on PostgreSQL and on the embedded engine alike).
ALTER TABLE sessions ADD COLUMN lease_owner varchar(64);
ALTER TABLE sessions ADD COLUMN lease_until timestamptz;
ALTER TABLE sessions ADD COLUMN switch_count integer NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN last_switch_at timestamptz;

CREATE TABLE agent_switches (
  id          uuid PRIMARY KEY,
  session_id  varchar(128) NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  from_agent  varchar(64),
  to_agent    varchar(64) NOT NULL,
  reason      text,
  confidence  varchar(16),
  -- routing (orchestrator), user (switch_agent / agent_type / REST), agent (switch_mode tool)
  source      varchar(16) NOT NULL,
  switched_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_switches_session_idx ON agent_switches (session_id, switched_at);

-- Every tool call the LLM asked for, keyed by session and call id (provider ids repeat across
-- sessions). `batch` groups the calls of one LLM answer, `position` orders them.
-- status: queued (waits behind an earlier call of its batch), pending_approval, approved (approved
-- or edited by hitl_decision; the IDE executes it), awaiting_result (sent, no approval needed),
-- completed, rejected (decision, failed result, or expired: decision_reason 'expired'), forbidden.
CREATE TABLE tool_calls (
  session_id        varchar(128) NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  call_id           varchar(255) NOT NULL,
  batch             uuid NOT NULL,
  position          integer NOT NULL,
  agent             varchar(64) NOT NULL,
  tool_name         varchar(255) NOT NULL,
  arguments         jsonb NOT NULL,
  final_arguments   jsonb,
  requires_approval boolean NOT NULL DEFAULT false,
  approval_reason   text,
  status            varchar(24) NOT NULL,
  decision          varchar(16),
  decision_reason   text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  sent_at           timestamptz,
  expires_at        timestamptz,
  decided_at        timestamptz,
  completed_at      timestamptz,
  PRIMARY KEY (session_id, call_id)
);
CREATE INDEX tool_calls_pending_idx ON tool_calls (expires_at) WHERE status = 'pending_approval';
CREATE INDEX tool_calls_batch_idx ON tool_calls (session_id, batch, position);

-- Durable event log: what upstream kept in in-memory dictionaries (/events/metrics, audit log,
-- stats). `event_type` uses upstream's dotted names (agent.switched, tool.execution.requested, ...).
CREATE TABLE events (
  id             uuid PRIMARY KEY,
  event_type     varchar(64) NOT NULL,
  category       varchar(16) NOT NULL,
  session_id     varchar(128),
  correlation_id varchar(64),
  data           jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_type_idx ON events (event_type, created_at);
CREATE INDEX events_session_idx ON events (session_id, created_at);

-- One row per LLM call made for a session (upstream's per-session LLM metrics).
CREATE TABLE llm_requests (
  id                uuid PRIMARY KEY,
  session_id        varchar(128) NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  agent             varchar(64),
  model             varchar(255) NOT NULL,
  duration_ms       integer NOT NULL,
  prompt_tokens     integer NOT NULL DEFAULT 0,
  completion_tokens integer NOT NULL DEFAULT 0,
  has_tool_calls    boolean NOT NULL DEFAULT false,
  success           boolean NOT NULL,
  error             text,
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_requests_session_idx ON llm_requests (session_id, created_at);
