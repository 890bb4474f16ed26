-- Signed tenant context: a session's tenant comes only from a token signed with a key the
-- application roles cannot read, so `SET app.tenant_id = '<other tenant>'` (one SQL injection
-- away) grants nothing.
--
--   token  = 'v1.<tenant uuid>.<expiry, unix seconds>.<hex HMAC-SHA-256 of the first three parts>'
--   mint   : app.mint_tenant_token(tenant uuid, ttl interval DEFAULT '15 minutes') -> text
--            (the owner, platform_admin, and app_tenant_issuer: the sign-in service's group)
--   set    : app.set_tenant(token text) -> uuid, checks the signature and the expiry and keeps
--            the token in app.tenant_token for the rest of the transaction only (SET LOCAL
--            semantics, so a transaction-pooling pooler never hands it to another client)
--   policy : tenant_id = (SELECT app.current_tenant()), which checks the token again: an
--            InitPlan, once per query, not per row. A forged or expired app.tenant_token set by
--            hand is an error; an empty one sees nothing.
--
-- The key lives in app_private.tenant_context_key (no privilege for anyone but app_owner),
-- pre-xored with the HMAC pads (RFC 2104), so checking costs two sha256() calls. Core
-- PostgreSQL only: sha256() and gen_random_uuid(), no pgcrypto.
-- migrate:up

-- The sign-in service's group: it may mint tokens and nothing else. Created here when the runner
-- may create roles (the admin on a fresh database); the post-deploy bootstrap creates it before
-- the migrator runs this.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'app_tenant_issuer') THEN
        BEGIN
            CREATE ROLE app_tenant_issuer NOLOGIN;
        EXCEPTION WHEN duplicate_object THEN
            NULL;
        END;
    END IF;
END
$roles$;

-- Created by the runner (CREATE on the database), owned by app_owner; nobody else may use it.
CREATE SCHEMA app_private AUTHORIZATION app_owner;

SET LOCAL ROLE app_owner;

REVOKE ALL ON SCHEMA app_private FROM PUBLIC;

CREATE TABLE app_private.tenant_context_key (
    id bigint PRIMARY KEY DEFAULT 1,
    -- key XOR 0x36.. and key XOR 0x5c.. over the 64-byte SHA-256 block (RFC 2104's K^ipad, K^opad)
    inner_key bytea NOT NULL,
    outer_key bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_context_key_single_row CHECK (id = 1),
    CONSTRAINT tenant_context_key_length_check CHECK (octet_length(inner_key) = 64 AND octet_length(outer_key) = 64)
);

-- A new key: every token minted before is refused from then on (tokens live minutes).
CREATE FUNCTION app_private.rotate_tenant_context_key() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- 64 bytes from four v4 uuids (pg_strong_random, 122 random bits each: 488 bits in all)
    k bytea := decode(replace(gen_random_uuid()::text || gen_random_uuid()::text
                              || gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');
    i bytea := k;
    o bytea := k;
    n integer;
BEGIN
    FOR n IN 0..63 LOOP
        i := set_byte(i, n, get_byte(k, n) # 54);  -- 0x36
        o := set_byte(o, n, get_byte(k, n) # 92);  -- 0x5c
    END LOOP;
    INSERT INTO app_private.tenant_context_key (id, inner_key, outer_key) VALUES (1, i, o)
    ON CONFLICT (id) DO UPDATE SET inner_key = excluded.inner_key, outer_key = excluded.outer_key, created_at = now();
END
$fn$;

SELECT app_private.rotate_tenant_context_key();

-- Why a token is not valid, as an error: the slow path, run only once a token has failed the
-- fast check in app.current_tenant() (or returns its tenant if it is valid after all).
CREATE FUNCTION app_private.verify_tenant_token(p_token text) RETURNS uuid
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    parts text[] := string_to_array(p_token, '.');
    ik bytea;
    ok bytea;
BEGIN
    IF cardinality(parts) IS DISTINCT FROM 4 OR parts[1] <> 'v1'
       OR parts[2] !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       OR parts[3] !~ '^[0-9]{1,12}$' OR parts[4] !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'malformed tenant token'
            USING ERRCODE = 'invalid_authorization_specification',
                  HINT = 'mint one with app.mint_tenant_token(tenant, ttl) and pass it to app.set_tenant(token)';
    END IF;
    SELECT k.inner_key, k.outer_key INTO ik, ok FROM app_private.tenant_context_key k WHERE k.id = 1;
    IF encode(sha256(ok || sha256(ik || convert_to(parts[1] || '.' || parts[2] || '.' || parts[3], 'UTF8'))), 'hex')
       IS DISTINCT FROM parts[4] THEN
        RAISE EXCEPTION 'tenant token signature does not verify'
            USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    -- against the transaction's start: a token valid when the transaction began stays valid in it
    IF parts[3]::bigint <= extract(epoch FROM now()) THEN
        RAISE EXCEPTION 'tenant token expired at %', to_timestamp(parts[3]::bigint)
            USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    RETURN parts[2]::uuid;
END
$fn$;

CREATE FUNCTION app.mint_tenant_token(p_tenant uuid, p_ttl interval DEFAULT interval '15 minutes') RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    msg text;
    ik bytea;
    ok bytea;
BEGIN
    IF p_tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant given' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_ttl IS NULL OR p_ttl <= interval '0' OR p_ttl > interval '1 day' THEN
        RAISE EXCEPTION 'tenant token lifetime must be more than 0 and at most 1 day, got %', p_ttl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT k.inner_key, k.outer_key INTO ik, ok FROM app_private.tenant_context_key k WHERE k.id = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no tenant context key' USING HINT = 'as the owner run SELECT app_private.rotate_tenant_context_key()';
    END IF;
    msg := format('v1.%s.%s', p_tenant, ceil(extract(epoch FROM clock_timestamp() + p_ttl))::bigint);
    RETURN msg || '.' || encode(sha256(ok || sha256(ik || convert_to(msg, 'UTF8'))), 'hex');
END
$fn$;

-- The verified tenant of this transaction, NULL when none is set. What every policy compares with,
-- once per query (an InitPlan). The fast path is a read of the key row and two sha256() calls: the
-- signature covers everything before the last '.', so a token that verifies is well-formed and its
-- parts can be cast. Anything else goes to the slow path, which raises naming what is wrong.
CREATE FUNCTION app.current_tenant() RETURNS uuid
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tok text := current_setting('app.tenant_token', true);
    msg text;
    ik bytea;
    ok bytea;
BEGIN
    IF tok IS NULL OR tok = '' THEN
        RETURN NULL;
    END IF;
    msg := left(tok, -65);
    SELECT k.inner_key, k.outer_key INTO ik, ok FROM app_private.tenant_context_key k WHERE k.id = 1;
    -- nested IFs, not AND: the casts run only on a signed message
    IF substr(tok, length(tok) - 64, 1) = '.' THEN
        IF encode(sha256(ok || sha256(ik || convert_to(msg, 'UTF8'))), 'hex') = right(tok, 64) THEN
            IF split_part(msg, '.', 3)::bigint > extract(epoch FROM now()) THEN
                RETURN split_part(msg, '.', 2)::uuid;
            END IF;
        END IF;
    END IF;
    RETURN app_private.verify_tenant_token(tok);
END
$fn$;

-- The only way to set a session's tenant: checks the token, keeps it for this transaction (a
-- bad token raises, which rolls the setting back with the transaction or savepoint).
CREATE FUNCTION app.set_tenant(p_token text) RETURNS uuid
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM set_config('app.tenant_token', coalesce(p_token, ''), true);
    IF coalesce(p_token, '') = '' THEN
        RAISE EXCEPTION 'no tenant token given' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    RETURN app.current_tenant();
END
$fn$;

GRANT EXECUTE ON FUNCTION app.set_tenant(text), app.current_tenant() TO app_readwrite, app_readonly, platform_admin;
GRANT EXECUTE ON FUNCTION app.mint_tenant_token(uuid, interval) TO app_tenant_issuer, platform_admin;

ALTER POLICY tenant_isolation ON app.tenants
    USING (id = (SELECT app.current_tenant())) WITH CHECK (id = (SELECT app.current_tenant()));
ALTER POLICY tenant_isolation ON app.users
    USING (tenant_id = (SELECT app.current_tenant())) WITH CHECK (tenant_id = (SELECT app.current_tenant()));
ALTER POLICY tenant_isolation ON app.user_roles
    USING (tenant_id = (SELECT app.current_tenant())) WITH CHECK (tenant_id = (SELECT app.current_tenant()));
ALTER POLICY tenant_isolation ON app.subscriptions
    USING (tenant_id = (SELECT app.current_tenant())) WITH CHECK (tenant_id = (SELECT app.current_tenant()));
ALTER POLICY tenant_isolation ON app.virtual_wallets
    USING (tenant_id = (SELECT app.current_tenant())) WITH CHECK (tenant_id = (SELECT app.current_tenant()));
ALTER POLICY tenant_isolation ON app.coin_transactions
    USING (tenant_id = (SELECT app.current_tenant())) WITH CHECK (tenant_id = (SELECT app.current_tenant()));
ALTER POLICY tenant_isolation ON app.audit_logs
    USING (tenant_id = (SELECT app.current_tenant())) WITH CHECK (tenant_id = (SELECT app.current_tenant()));
ALTER POLICY tenant_isolation ON app.tenant_api_keys
    USING (tenant_id = (SELECT app.current_tenant())) WITH CHECK (tenant_id = (SELECT app.current_tenant()));

-- Creating a tenant and changing its tier or status are platform actions (platform_admin, the
-- owner); the application may edit the profile only.
REVOKE INSERT, UPDATE ON app.tenants FROM app_readwrite;
GRANT UPDATE (name, domain) ON app.tenants TO app_readwrite;

-- Ledger and audit ids (and the ledger's clock and balance) come from the database: column
-- privileges leave out id, so INSERT ... OVERRIDING SYSTEM VALUE is refused to the application.
REVOKE INSERT ON app.coin_transactions, app.audit_logs FROM app_readwrite, platform_admin;
GRANT INSERT (tenant_id, wallet_id, amount, kind, idempotency_key, reference)
    ON app.coin_transactions TO app_readwrite, platform_admin;
GRANT INSERT (tenant_id, user_id, action, resource_type, resource_id, details, ip_address, occurred_at)
    ON app.audit_logs TO app_readwrite, platform_admin;

-- No sequence is readable (last_value, currval) by the application roles. Identity columns do not
-- need it: the executor's nextval for an identity default skips the privilege check.
REVOKE ALL ON ALL SEQUENCES IN SCHEMA app FROM app_readwrite, app_readonly, platform_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    REVOKE USAGE, SELECT ON SEQUENCES FROM app_readwrite, platform_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    REVOKE SELECT ON SEQUENCES FROM app_readonly;

-- The money path raises on every failure it does not positively recognise: only a unique
-- violation of the idempotency key is a replay. Anything else (an id clash after a restore left
-- the sequence behind, ...) propagates; it used to return an all-NULL row as success.
CREATE OR REPLACE FUNCTION app.post_coin_transaction(
    p_wallet_id uuid,
    p_amount bigint,
    p_kind text,
    p_idempotency_key text,
    p_reference text DEFAULT NULL
) RETURNS app.coin_transactions
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    w_tenant uuid;
    result app.coin_transactions;
    violated text;
BEGIN
    SELECT w.tenant_id INTO w_tenant FROM app.virtual_wallets w WHERE w.id = p_wallet_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'wallet % not found in the current tenant', p_wallet_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT * INTO result FROM app.coin_transactions t
    WHERE t.wallet_id = p_wallet_id AND t.idempotency_key = p_idempotency_key;
    IF NOT FOUND THEN
        BEGIN
            INSERT INTO app.coin_transactions (tenant_id, wallet_id, amount, kind, idempotency_key, reference)
            VALUES (w_tenant, p_wallet_id, p_amount, p_kind, p_idempotency_key, p_reference)
            RETURNING * INTO result;
        EXCEPTION WHEN unique_violation THEN
            GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
            IF violated IS DISTINCT FROM 'coin_transactions_wallet_id_idempotency_key_key' THEN
                RAISE;
            END IF;
            -- a concurrent replay committed first: return its row
            SELECT * INTO result FROM app.coin_transactions t
            WHERE t.wallet_id = p_wallet_id AND t.idempotency_key = p_idempotency_key;
        END;
    END IF;
    IF result.id IS NULL THEN
        RAISE EXCEPTION 'posting % % to wallet % with key % recorded no ledger row',
                p_kind, p_amount, p_wallet_id, p_idempotency_key
            USING ERRCODE = 'internal_error';
    END IF;
    IF result.amount <> p_amount OR result.kind <> p_kind THEN
        RAISE EXCEPTION 'idempotency key % was used on wallet % for % %, not % %',
                p_idempotency_key, p_wallet_id, result.kind, result.amount, p_kind, p_amount
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'coin_transactions_wallet_id_idempotency_key_key';
    END IF;
    RETURN result;
END
$fn$;

RESET ROLE;

-- migrate:down

SET LOCAL ROLE app_owner;

CREATE OR REPLACE FUNCTION app.post_coin_transaction(
    p_wallet_id uuid,
    p_amount bigint,
    p_kind text,
    p_idempotency_key text,
    p_reference text DEFAULT NULL
) RETURNS app.coin_transactions
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    w_tenant uuid;
    result app.coin_transactions;
BEGIN
    SELECT w.tenant_id INTO w_tenant FROM app.virtual_wallets w WHERE w.id = p_wallet_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'wallet % not found in the current tenant', p_wallet_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT * INTO result FROM app.coin_transactions t
    WHERE t.wallet_id = p_wallet_id AND t.idempotency_key = p_idempotency_key;
    IF NOT FOUND THEN
        BEGIN
            INSERT INTO app.coin_transactions (tenant_id, wallet_id, amount, kind, idempotency_key, reference)
            VALUES (w_tenant, p_wallet_id, p_amount, p_kind, p_idempotency_key, p_reference)
            RETURNING * INTO result;
            RETURN result;
        EXCEPTION WHEN unique_violation THEN
            -- a concurrent replay committed first; fall through and return its row
            SELECT * INTO result FROM app.coin_transactions t
            WHERE t.wallet_id = p_wallet_id AND t.idempotency_key = p_idempotency_key;
        END;
    END IF;
    IF result.amount <> p_amount OR result.kind <> p_kind THEN
        RAISE EXCEPTION 'idempotency key % was used on wallet % for % %, not % %',
                p_idempotency_key, p_wallet_id, result.kind, result.amount, p_kind, p_amount
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'coin_transactions_wallet_id_idempotency_key_key';
    END IF;
    RETURN result;
END
$fn$;

ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    GRANT SELECT ON SEQUENCES TO app_readonly;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app
    GRANT USAGE, SELECT ON SEQUENCES TO app_readwrite, platform_admin;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA app TO app_readwrite, platform_admin;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA app TO app_readonly;

-- Revoking the table privilege also revokes the column privileges granted above.
REVOKE INSERT ON app.coin_transactions, app.audit_logs FROM app_readwrite, platform_admin;
GRANT INSERT ON app.coin_transactions, app.audit_logs TO app_readwrite, platform_admin;

REVOKE UPDATE ON app.tenants FROM app_readwrite;
GRANT INSERT, UPDATE ON app.tenants TO app_readwrite;

ALTER POLICY tenant_isolation ON app.tenant_api_keys
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER POLICY tenant_isolation ON app.audit_logs
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER POLICY tenant_isolation ON app.coin_transactions
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER POLICY tenant_isolation ON app.virtual_wallets
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER POLICY tenant_isolation ON app.subscriptions
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER POLICY tenant_isolation ON app.user_roles
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER POLICY tenant_isolation ON app.users
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER POLICY tenant_isolation ON app.tenants
    USING (id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (id = nullif(current_setting('app.tenant_id', true), '')::uuid);

DROP FUNCTION app.current_tenant();
DROP FUNCTION app.set_tenant(text);
DROP FUNCTION app.mint_tenant_token(uuid, interval);
DROP FUNCTION app_private.verify_tenant_token(text);
DROP FUNCTION app_private.rotate_tenant_context_key();
DROP TABLE app_private.tenant_context_key;

RESET ROLE;

-- Empty by now (no CASCADE: a leftover fails loudly). The role app_tenant_issuer stays, as 0001's
-- roles do: roles are cluster-wide and other databases may use it.
DROP SCHEMA app_private;
