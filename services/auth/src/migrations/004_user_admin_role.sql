-- Admin is a property of the user: a token carries api:admin only for a user with is_admin (and a
-- client allowed that scope); client_credentials tokens keep their client's scopes. The CLI sets it
-- (`create-user --admin`, `set-admin`).
ALTER TABLE users ADD COLUMN is_admin boolean NOT NULL DEFAULT false;

-- Existing installations: the seeded `admin` user is an admin (new ones are created so by the seed),
-- and the seeded public client may carry api:admin, which only admin users get through it.
UPDATE users SET is_admin = true WHERE lower(username) = 'admin';
UPDATE oauth_clients SET allowed_scopes = btrim(allowed_scopes || ' api:admin'), updated_at = now()
 WHERE client_id = 'codelab-flutter-app' AND NOT ('api:admin' = ANY (string_to_array(allowed_scopes, ' ')));
