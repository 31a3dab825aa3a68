-- Refresh-token lineage: revoking a lineage (reuse detected) or a token with its descendants
-- (RFC 7009) walks parent_jti_hash downwards, which needs this index. Only rotated tokens have a
-- parent, so the index skips first-login rows.
CREATE INDEX refresh_tokens_parent_jti_hash_idx ON refresh_tokens (parent_jti_hash) WHERE parent_jti_hash IS NOT NULL;
