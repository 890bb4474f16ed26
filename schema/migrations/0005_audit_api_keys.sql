-- The audit log (append-only) and tenant API keys (only a hash of the key is stored).
-- migrate:up

SET LOCAL ROLE app_owner;

CREATE TABLE app.audit_logs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- A tenant's audit trail is erased with the tenant (data-subject erasure).
    tenant_id uuid NOT NULL REFERENCES app.tenants (id) ON DELETE CASCADE,
    -- The actor; NULL for system actions and after the user is deleted (the entry stays).
    user_id uuid,
    action text NOT NULL,
    resource_type text NOT NULL,
    resource_id text,
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    ip_address inet,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_logs_user_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES app.users (tenant_id, id) ON DELETE SET NULL (user_id),
    -- "<resource>.<verb>", e.g. user.login, wallet.debit
    CONSTRAINT audit_logs_action_check CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    CONSTRAINT audit_logs_resource_type_check CHECK (resource_type ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT audit_logs_details_check CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX audit_logs_tenant_id_occurred_at_idx ON app.audit_logs (tenant_id, occurred_at);
CREATE INDEX audit_logs_tenant_id_user_id_occurred_at_idx ON app.audit_logs (tenant_id, user_id, occurred_at);
CREATE INDEX audit_logs_tenant_id_resource_idx ON app.audit_logs (tenant_id, resource_type, resource_id);
-- Searching details by containment: details @> '{"wallet_id": "..."}'.
CREATE INDEX audit_logs_details_idx ON app.audit_logs USING gin (details jsonb_path_ops);

-- Entries are never rewritten, by anyone, with one exception: the foreign key's
-- ON DELETE SET NULL (user_id) when the actor is deleted, which arrives from the referential
-- action (trigger depth > 1) and changes nothing but user_id. Deleting stays possible for the
-- owner only (retention purges, tenant erasure by cascade); the application roles cannot delete.
CREATE FUNCTION app.audit_logs_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF pg_trigger_depth() > 1 AND OLD.user_id IS NOT NULL AND NEW.user_id IS NULL
       AND to_jsonb(NEW) - 'user_id' = to_jsonb(OLD) - 'user_id' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'app.audit_logs is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE TRIGGER audit_logs_append_only BEFORE UPDATE ON app.audit_logs
    FOR EACH ROW EXECUTE FUNCTION app.audit_logs_append_only();
REVOKE UPDATE, DELETE ON app.audit_logs FROM app_readwrite, platform_admin;

CREATE TABLE app.tenant_api_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES app.tenants (id) ON DELETE CASCADE,
    name text NOT NULL,
    -- The first characters of the key, shown in the UI and used to find the row.
    prefix text NOT NULL,
    -- SHA-256 of the whole key. The key itself is shown once at creation and never stored;
    -- a fast hash is enough because keys are long random strings, not passwords.
    key_hash bytea NOT NULL,
    permissions text[] NOT NULL DEFAULT '{}',
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    CONSTRAINT tenant_api_keys_created_by_fkey FOREIGN KEY (tenant_id, created_by)
        REFERENCES app.users (tenant_id, id) ON DELETE SET NULL (created_by),
    CONSTRAINT tenant_api_keys_prefix_key UNIQUE (prefix),
    CONSTRAINT tenant_api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT tenant_api_keys_name_check CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    CONSTRAINT tenant_api_keys_prefix_check CHECK (prefix ~ '^[A-Za-z0-9_]{8,32}$'),
    CONSTRAINT tenant_api_keys_key_hash_check CHECK (octet_length(key_hash) = 32),
    CONSTRAINT tenant_api_keys_permissions_check
        CHECK (array_position(permissions, NULL) IS NULL AND cardinality(permissions) <= 64),
    CONSTRAINT tenant_api_keys_expires_at_check CHECK (expires_at IS NULL OR expires_at > created_at),
    CONSTRAINT tenant_api_keys_revoked_at_check CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
CREATE INDEX tenant_api_keys_tenant_id_created_at_idx ON app.tenant_api_keys (tenant_id, created_at);
CREATE INDEX tenant_api_keys_tenant_id_created_by_idx ON app.tenant_api_keys (tenant_id, created_by);
-- Which keys may do X: permissions @> ARRAY['wallet:read'].
CREATE INDEX tenant_api_keys_permissions_idx ON app.tenant_api_keys USING gin (permissions);

RESET ROLE;

-- migrate:down

SET LOCAL ROLE app_owner;

DROP TABLE app.tenant_api_keys;
DROP TABLE app.audit_logs;
DROP FUNCTION app.audit_logs_append_only();

RESET ROLE;
