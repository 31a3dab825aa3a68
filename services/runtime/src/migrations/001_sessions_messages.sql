-- Sessions and their messages. Messages are insert-only: each gets the next per-session sequence
-- number, taken by the same statement that bumps sessions.message_count (row lock), so appends
-- never rewrite history and concurrent appends cannot collide.
CREATE TABLE sessions (
  id            varchar(128) PRIMARY KEY,
  owner_sub     varchar(255),
  title         varchar(500),
  description   text,
  current_agent varchar(64) NOT NULL DEFAULT 'orchestrator',
  message_count integer NOT NULL DEFAULT 0,
  is_active     boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_activity timestamptz NOT NULL DEFAULT now(),
  deleted_at    timestamptz
);
CREATE INDEX sessions_activity_idx ON sessions (last_activity DESC) WHERE deleted_at IS NULL;
CREATE INDEX sessions_owner_idx ON sessions (owner_sub, last_activity DESC) WHERE deleted_at IS NULL;

CREATE TABLE messages (
  id           uuid PRIMARY KEY,
  session_id   varchar(128) NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  seq          integer NOT NULL,
  role         varchar(16) NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
  content      text,
  name         varchar(255),
  tool_call_id varchar(255),
  tool_calls   jsonb,
  token_count  integer,
  metadata     jsonb,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (session_id, seq)
);
