-- Tenants, their users, and role-based access control (roles, permissions, assignments).
--
-- Every tenant-scoped row carries tenant_id; children reference (tenant_id, id) of their parent
-- so a row can never point at another tenant's row. Row-level security is switched on for all
-- tenant-scoped tables in 0006.
-- migrate:up

SET LOCAL ROLE app_owner;

-- Maintains updated_at on every table that has one (one trigger per table, BEFORE UPDATE).
CREATE FUNCTION app.set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$fn$;

CREATE TABLE app.tenants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug text NOT NULL,
    name text NOT NULL,
    domain text,
    subscription_tier text NOT NULL DEFAULT 'free',
    status text NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    CONSTRAINT tenants_slug_check CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    CONSTRAINT tenants_name_check CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    CONSTRAINT tenants_domain_check CHECK (domain IS NULL OR domain ~ '^[a-z0-9.-]+\.[a-z]{2,}$'),
    CONSTRAINT tenants_subscription_tier_check
        CHECK (subscription_tier IN ('free', 'starter', 'pro', 'enterprise')),
    CONSTRAINT tenants_status_check CHECK (status IN ('active', 'suspended', 'archived'))
);
-- A custom domain routes to exactly one tenant.
CREATE UNIQUE INDEX tenants_domain_key ON app.tenants (domain) WHERE domain IS NOT NULL;
CREATE INDEX tenants_status_created_at_idx ON app.tenants (status, created_at);
CREATE TRIGGER tenants_set_updated_at BEFORE UPDATE ON app.tenants
    FOR EACH ROW EXECUTE FUNCTION app.set_updated_at();

CREATE TABLE app.users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES app.tenants (id) ON DELETE CASCADE,
    email text NOT NULL,
    -- PHC string of a slow hash (argon2id, bcrypt, scrypt); NULL for single-sign-on users.
    password_hash text,
    display_name text NOT NULL,
    given_name text,
    family_name text,
    avatar_url text,
    locale text NOT NULL DEFAULT 'en',
    time_zone text NOT NULL DEFAULT 'UTC',
    status text NOT NULL DEFAULT 'active',
    email_verified_at timestamptz,
    last_login_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The target of every tenant-safe composite foreign key below and in later migrations.
    CONSTRAINT users_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT users_email_check CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 320),
    -- Refuses anything that is not a PHC-format hash, e.g. a plain-text password.
    CONSTRAINT users_password_hash_check CHECK (password_hash IS NULL OR password_hash ~ '^\$[a-z0-9-]+\$'),
    CONSTRAINT users_display_name_check CHECK (length(btrim(display_name)) BETWEEN 1 AND 200),
    CONSTRAINT users_avatar_url_check CHECK (avatar_url IS NULL OR avatar_url ~ '^https://'),
    CONSTRAINT users_locale_check CHECK (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    CONSTRAINT users_status_check CHECK (status IN ('active', 'suspended', 'deleted'))
);
-- One account per email and tenant, whatever the case: Alice@x.io and alice@x.io collide.
CREATE UNIQUE INDEX users_tenant_email_key ON app.users (tenant_id, lower(email));
CREATE INDEX users_tenant_id_created_at_idx ON app.users (tenant_id, created_at);
CREATE INDEX users_tenant_id_status_idx ON app.users (tenant_id, status);
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON app.users
    FOR EACH ROW EXECUTE FUNCTION app.set_updated_at();

-- Roles and permissions are one catalog for the whole platform (not per tenant); assignments
-- (user_roles) are per tenant. The application reads the catalog; migrations and
-- platform_admin change it.
CREATE TABLE app.roles (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roles_name_key UNIQUE (name),
    CONSTRAINT roles_name_check CHECK (name ~ '^[a-z][a-z0-9_]{1,62}$')
);

CREATE TABLE app.permissions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL,
    category text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT permissions_code_key UNIQUE (code),
    -- "<category>:<action>", e.g. users:write
    CONSTRAINT permissions_code_check CHECK (code ~ '^[a-z][a-z_]*:[a-z][a-z_]*$'),
    CONSTRAINT permissions_category_check
        CHECK (category IN ('tenant', 'users', 'roles', 'billing', 'wallet', 'audit', 'api_keys', 'platform'))
);
CREATE INDEX permissions_category_idx ON app.permissions (category);

CREATE TABLE app.role_permissions (
    role_id bigint NOT NULL REFERENCES app.roles (id) ON DELETE CASCADE,
    permission_id bigint NOT NULL REFERENCES app.permissions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role_id, permission_id)
);
CREATE INDEX role_permissions_permission_id_idx ON app.role_permissions (permission_id);

CREATE TABLE app.user_roles (
    tenant_id uuid NOT NULL REFERENCES app.tenants (id) ON DELETE CASCADE,
    user_id uuid NOT NULL,
    -- A role still assigned to someone cannot be deleted from the catalog.
    role_id bigint NOT NULL REFERENCES app.roles (id) ON DELETE RESTRICT,
    assigned_by uuid,
    assigned_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'active',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id, role_id),
    CONSTRAINT user_roles_user_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES app.users (tenant_id, id) ON DELETE CASCADE,
    -- Only the column is cleared when the assigner is deleted (tenant_id is NOT NULL).
    CONSTRAINT user_roles_assigned_by_fkey FOREIGN KEY (tenant_id, assigned_by)
        REFERENCES app.users (tenant_id, id) ON DELETE SET NULL (assigned_by),
    CONSTRAINT user_roles_status_check CHECK (status IN ('active', 'revoked'))
);
CREATE INDEX user_roles_role_id_idx ON app.user_roles (role_id);
CREATE INDEX user_roles_tenant_id_assigned_by_idx ON app.user_roles (tenant_id, assigned_by);
CREATE INDEX user_roles_user_id_status_idx ON app.user_roles (user_id, status);
CREATE TRIGGER user_roles_set_updated_at BEFORE UPDATE ON app.user_roles
    FOR EACH ROW EXECUTE FUNCTION app.set_updated_at();

-- The catalog is reference data: read-only to the application.
REVOKE INSERT, UPDATE, DELETE ON app.roles, app.permissions, app.role_permissions FROM app_readwrite;
-- Creating and deleting tenants is a platform action.
REVOKE DELETE ON app.tenants FROM app_readwrite;

-- Reference data every environment needs (production included), so it lives here, not in seed.
INSERT INTO app.roles (name, description) VALUES
    ('super_admin', 'Operates the platform across tenants'),
    ('tenant_admin', 'Administers one tenant: users, roles, billing, API keys'),
    ('member', 'A regular user of one tenant');

INSERT INTO app.permissions (code, category, description) VALUES
    ('tenant:read', 'tenant', 'Read the tenant profile'),
    ('tenant:write', 'tenant', 'Change the tenant profile'),
    ('users:read', 'users', 'List and read users'),
    ('users:write', 'users', 'Invite, change and suspend users'),
    ('roles:assign', 'roles', 'Assign and revoke roles'),
    ('billing:read', 'billing', 'Read subscriptions and invoices'),
    ('billing:write', 'billing', 'Change the subscription'),
    ('wallet:read', 'wallet', 'Read wallets and transactions'),
    ('wallet:transfer', 'wallet', 'Spend and transfer coins'),
    ('audit:read', 'audit', 'Read the audit log'),
    ('api_keys:manage', 'api_keys', 'Create and revoke API keys'),
    ('platform:manage', 'platform', 'Operate across tenants');

INSERT INTO app.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM app.roles r
JOIN app.permissions p ON
    r.name = 'super_admin'
    OR (r.name = 'tenant_admin' AND p.category <> 'platform')
    OR (r.name = 'member' AND p.code IN ('tenant:read', 'users:read', 'wallet:read', 'wallet:transfer'));

RESET ROLE;

-- migrate:down

SET LOCAL ROLE app_owner;

DROP TABLE app.user_roles;
DROP TABLE app.role_permissions;
DROP TABLE app.permissions;
DROP TABLE app.roles;
DROP TABLE app.users;
DROP TABLE app.tenants;
DROP FUNCTION app.set_updated_at();

RESET ROLE;
