-- Token families: every login starts a family (the `sid` claim of its access and refresh tokens);
-- rotation keeps it. When a family is revoked (refresh-token reuse, RFC 7009 revocation, a reset
-- password or a disabled account) it is listed here until its access tokens have expired, so that
-- verifiers (the gateway) can refuse them before their `exp`.
ALTER TABLE refresh_tokens ADD COLUMN family_id uuid;
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id) WHERE family_id IS NOT NULL;

CREATE TABLE revoked_token_families (
  family_id  uuid PRIMARY KEY,
  revoked_at timestamptz NOT NULL DEFAULT now(),
  -- after this, no access token of the family can still be valid
  expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_token_families_expiry_idx ON revoked_token_families (expires_at);
