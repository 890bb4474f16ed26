-- Tenant isolation by row-level security on every tenant-scoped table.
--
-- The application sets the tenant per transaction:  SET LOCAL app.tenant_id = '<uuid>'
-- Policies compare tenant_id with that setting. When it is missing or empty the comparison is
-- NULL, so a query sees no rows and may write none: isolation fails closed. A value that is not
-- a uuid is an error. FORCE makes the policies apply to the owner role too (migrations, the
-- ledger trigger); platform_admin gets an explicit cross-tenant policy instead of BYPASSRLS,
-- which managed PostgreSQL does not grant. A new tenant-scoped table must get the same three
-- statements (a test checks every table with a tenant_id column).
-- migrate:up

SET LOCAL ROLE app_owner;

ALTER TABLE app.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.tenants
    USING (id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY platform_admin_all ON app.tenants TO platform_admin USING (true) WITH CHECK (true);

ALTER TABLE app.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.users
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY platform_admin_all ON app.users TO platform_admin USING (true) WITH CHECK (true);

ALTER TABLE app.user_roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.user_roles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.user_roles
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY platform_admin_all ON app.user_roles TO platform_admin USING (true) WITH CHECK (true);

ALTER TABLE app.subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.subscriptions
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY platform_admin_all ON app.subscriptions TO platform_admin USING (true) WITH CHECK (true);

ALTER TABLE app.virtual_wallets ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.virtual_wallets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.virtual_wallets
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY platform_admin_all ON app.virtual_wallets TO platform_admin USING (true) WITH CHECK (true);

ALTER TABLE app.coin_transactions ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.coin_transactions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.coin_transactions
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY platform_admin_all ON app.coin_transactions TO platform_admin USING (true) WITH CHECK (true);

ALTER TABLE app.audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.audit_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.audit_logs
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY platform_admin_all ON app.audit_logs TO platform_admin USING (true) WITH CHECK (true);

ALTER TABLE app.tenant_api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.tenant_api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.tenant_api_keys
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY platform_admin_all ON app.tenant_api_keys TO platform_admin USING (true) WITH CHECK (true);

-- Two look-ups happen before a tenant is known: resolving the tenant of a request (by slug or
-- custom domain) and authenticating an API key. They run as app_owner (SECURITY DEFINER) and
-- return only what identifies the tenant; these read-only policies let app_owner see those
-- rows. app_owner already owns the tables, so this grants its members nothing new in effect.
CREATE POLICY owner_tenant_lookup ON app.tenants FOR SELECT TO app_owner USING (true);
CREATE POLICY owner_api_key_lookup ON app.tenant_api_keys FOR SELECT TO app_owner USING (true);

-- The tenant id for a slug or custom domain, NULL if none is active.
CREATE FUNCTION app.resolve_tenant(p_slug_or_domain text) RETURNS uuid
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT t.id FROM app.tenants t
    WHERE (t.slug = lower(p_slug_or_domain) OR t.domain = lower(p_slug_or_domain)) AND t.status = 'active'
    LIMIT 1
$fn$;

-- The key's tenant and permissions, if the key is live (not revoked, not expired, tenant active).
CREATE FUNCTION app.authenticate_api_key(p_prefix text, p_key_hash bytea)
    RETURNS TABLE (key_id uuid, tenant_id uuid, permissions text[])
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT k.id, k.tenant_id, k.permissions
    FROM app.tenant_api_keys k
    JOIN app.tenants t ON t.id = k.tenant_id AND t.status = 'active'
    WHERE k.prefix = p_prefix AND k.key_hash = p_key_hash
      AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
$fn$;

GRANT EXECUTE ON FUNCTION app.resolve_tenant(text) TO app_readwrite, app_readonly, platform_admin;
GRANT EXECUTE ON FUNCTION app.authenticate_api_key(text, bytea) TO app_readwrite, platform_admin;

RESET ROLE;

-- migrate:down

SET LOCAL ROLE app_owner;

DROP FUNCTION app.authenticate_api_key(text, bytea);
DROP FUNCTION app.resolve_tenant(text);
DROP POLICY owner_api_key_lookup ON app.tenant_api_keys;
DROP POLICY owner_tenant_lookup ON app.tenants;

DROP POLICY platform_admin_all ON app.tenant_api_keys;
DROP POLICY tenant_isolation ON app.tenant_api_keys;
ALTER TABLE app.tenant_api_keys NO FORCE ROW LEVEL SECURITY;
ALTER TABLE app.tenant_api_keys DISABLE ROW LEVEL SECURITY;

DROP POLICY platform_admin_all ON app.audit_logs;
DROP POLICY tenant_isolation ON app.audit_logs;
ALTER TABLE app.audit_logs NO FORCE ROW LEVEL SECURITY;
ALTER TABLE app.audit_logs DISABLE ROW LEVEL SECURITY;

DROP POLICY platform_admin_all ON app.coin_transactions;
DROP POLICY tenant_isolation ON app.coin_transactions;
ALTER TABLE app.coin_transactions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE app.coin_transactions DISABLE ROW LEVEL SECURITY;

DROP POLICY platform_admin_all ON app.virtual_wallets;
DROP POLICY tenant_isolation ON app.virtual_wallets;
ALTER TABLE app.virtual_wallets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE app.virtual_wallets DISABLE ROW LEVEL SECURITY;

DROP POLICY platform_admin_all ON app.subscriptions;
DROP POLICY tenant_isolation ON app.subscriptions;
ALTER TABLE app.subscriptions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE app.subscriptions DISABLE ROW LEVEL SECURITY;

DROP POLICY platform_admin_all ON app.user_roles;
DROP POLICY tenant_isolation ON app.user_roles;
ALTER TABLE app.user_roles NO FORCE ROW LEVEL SECURITY;
ALTER TABLE app.user_roles DISABLE ROW LEVEL SECURITY;

DROP POLICY platform_admin_all ON app.users;
DROP POLICY tenant_isolation ON app.users;
ALTER TABLE app.users NO FORCE ROW LEVEL SECURITY;
ALTER TABLE app.users DISABLE ROW LEVEL SECURITY;

DROP POLICY platform_admin_all ON app.tenants;
DROP POLICY tenant_isolation ON app.tenants;
ALTER TABLE app.tenants NO FORCE ROW LEVEL SECURITY;
ALTER TABLE app.tenants DISABLE ROW LEVEL SECURITY;

RESET ROLE;
