-- Readers do not need secrets: app_readonly (reporting, support tools) may read every column
-- except the password hashes and API key hashes. A column added later to these two tables is
-- not readable by app_readonly until granted here (a test lists the expected columns).
-- migrate:up

SET LOCAL ROLE app_owner;

REVOKE SELECT ON app.users, app.tenant_api_keys FROM app_readonly;
GRANT SELECT (
    id, tenant_id, email, display_name, given_name, family_name, avatar_url, locale, time_zone,
    status, email_verified_at, last_login_at, created_at, updated_at
) ON app.users TO app_readonly;
GRANT SELECT (
    id, tenant_id, name, prefix, permissions, created_by, created_at, expires_at, revoked_at, last_used_at
) ON app.tenant_api_keys TO app_readonly;

RESET ROLE;

-- migrate:down

SET LOCAL ROLE app_owner;

-- Revoking the table privilege also revokes the column privileges granted above.
REVOKE SELECT ON app.users, app.tenant_api_keys FROM app_readonly;
GRANT SELECT ON app.users, app.tenant_api_keys TO app_readonly;

RESET ROLE;
