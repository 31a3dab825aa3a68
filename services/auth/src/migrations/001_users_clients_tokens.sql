-- Auth schema (upstream §3.11, with fixes): uuid ids, case-insensitive unique usernames and emails,
-- grant types as an array instead of a JSON string, jsonb audit data, NOT NULL where upstream
-- relied on ORM defaults. Runs on PostgreSQL 15+ and on PGlite.

CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  username      text NOT NULL CHECK (length(username) BETWEEN 1 AND 255),
  email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 255),
  password_hash text NOT NULL,
  is_active     boolean NOT NULL DEFAULT true,
  is_verified   boolean NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  last_login_at timestamptz
);
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TABLE oauth_clients (
  client_id              text PRIMARY KEY CHECK (length(client_id) BETWEEN 1 AND 255),
  -- NULL for public clients.
  client_secret_hash     text,
  name                   text NOT NULL,
  description            text,
  is_confidential        boolean NOT NULL DEFAULT false,
  -- Space-separated scope tokens (RFC 6749 §3.3).
  allowed_scopes         text NOT NULL DEFAULT '',
  allowed_grant_types    text[] NOT NULL DEFAULT '{}',
  -- Seconds; NULL means the service default (AUTH_SERVICE__ACCESS_TOKEN_LIFETIME / _REFRESH_TOKEN_LIFETIME).
  access_token_lifetime  integer CHECK (access_token_lifetime > 0),
  refresh_token_lifetime integer CHECK (refresh_token_lifetime > 0),
  is_active              boolean NOT NULL DEFAULT true,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  CHECK (NOT is_confidential OR client_secret_hash IS NOT NULL)
);

CREATE TABLE refresh_tokens (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- sha256(jti) in hex: the token itself is never stored.
  jti_hash        char(64) NOT NULL UNIQUE,
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  client_id       text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
  scope           text NOT NULL DEFAULT '',
  expires_at      timestamptz NOT NULL,
  revoked         boolean NOT NULL DEFAULT false,
  revoked_at      timestamptz,
  parent_jti_hash char(64),
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_user_client_idx ON refresh_tokens (user_id, client_id);
CREATE INDEX refresh_tokens_client_id_idx ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

CREATE TABLE audit_logs (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid REFERENCES users (id) ON DELETE SET NULL,
  client_id     text,
  event_type    text NOT NULL,
  event_data    jsonb,
  ip_address    text,
  user_agent    text,
  success       boolean NOT NULL,
  error_message text,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_user_id_idx ON audit_logs (user_id, created_at);
CREATE INDEX audit_logs_event_type_idx ON audit_logs (event_type, created_at);
CREATE INDEX audit_logs_created_at_idx ON audit_logs (created_at);
