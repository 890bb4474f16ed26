-- Group roles, the application schema `app`, and the grants every later table inherits.
--
-- Runs as the managed admin on a fresh database (RDS master user / Cloud SQL user: CREATEROLE,
-- not superuser) or as the `migrator` login once the roles exist. Nothing here needs superuser:
-- no BYPASSRLS, no extensions, no ALTER SYSTEM.
-- migrate:up

-- Roles are cluster-wide: another database on the same instance may have created them already,
-- so create only what is missing. duplicate_object covers a concurrent run in another database.
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['app_owner', 'app_readwrite', 'app_readonly', 'platform_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$roles$;

-- On PostgreSQL 16 a CREATEROLE user gets only ADMIN OPTION on the roles it creates
-- (createrole_self_grant is empty by default), which lets it grant them but not SET ROLE to
-- them. Grant the runner membership in app_owner explicitly so every object below is owned by
-- app_owner, not by whichever login ran the migration.
DO $owner$
BEGIN
    IF NOT pg_catalog.pg_has_role(current_user, 'app_owner', 'SET') THEN
        BEGIN
            EXECUTE format('GRANT app_owner TO %I WITH SET TRUE', current_user);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role % cannot act as app_owner', current_user
                USING HINT = format('as the role that created app_owner run: GRANT app_owner TO %I', current_user);
        END;
    END IF;
END
$owner$;

-- Created by the runner (it needs CREATE on the database; the admin owns it) but owned by app_owner.
CREATE SCHEMA app AUTHORIZATION app_owner;

SET LOCAL ROLE app_owner;

-- Nothing in `app` is reachable unless granted below.
REVOKE ALL ON SCHEMA app FROM PUBLIC;
GRANT USAGE ON SCHEMA app TO app_readwrite, app_readonly, platform_admin;

-- Future tables get the same grants (later migrations narrow them table by table: catalogs are
-- read-only to the application, the ledger and audit log are append-only).
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_readwrite, platform_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    GRANT SELECT ON TABLES TO app_readonly;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    GRANT USAGE, SELECT ON SEQUENCES TO app_readwrite, platform_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    GRANT SELECT ON SEQUENCES TO app_readonly;
-- Functions are executable by PUBLIC by default; ours are granted one by one instead.
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner
    REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- The runner writes its ledger row after this file, as itself.
RESET ROLE;

-- migrate:down

SET LOCAL ROLE app_owner;

ALTER DEFAULT PRIVILEGES FOR ROLE app_owner
    GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    REVOKE SELECT ON SEQUENCES FROM app_readonly;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    REVOKE USAGE, SELECT ON SEQUENCES FROM app_readwrite, platform_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    REVOKE SELECT ON TABLES FROM app_readonly;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM app_readwrite, platform_admin;

-- Empty by now: every later down has dropped its objects (no CASCADE, so a leftover fails loudly).
DROP SCHEMA app;

RESET ROLE;

-- The roles and the runner's membership in app_owner are deliberately NOT dropped: roles are
-- cluster-wide, other databases on the instance (a second application database, a restored
-- copy) may own objects through them, and the login users the post-deploy step created
-- (migrator, app, readonly) are members of them. Dropping them here would either fail on those
-- dependencies or silently strip another database's access. Removing them is an explicit
-- operator action (DROP ROLE) once no database uses them.
