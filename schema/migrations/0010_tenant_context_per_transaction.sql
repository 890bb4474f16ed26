-- The tenant context belongs to the transaction that set it, even when a client sets the token
-- by hand for its whole session.
--
-- 0008 keeps the token with SET LOCAL semantics when it goes through app.set_tenant(token). But
-- a client may also `SET app.tenant_token = '<its valid token>'` for its session (a setting any
-- role may change). Under a transaction-pooling pooler (PgBouncer, Cloud SQL managed pooling)
-- that server connection then serves other clients, and their transactions ran as that tenant:
-- the post-deploy check "pooled-isolation: session SET of a valid token" showed it through a
-- real PgBouncer. Now app.set_tenant also records which transaction it ran in (the backend and
-- the transaction's start time, now(), which no later transaction on that backend shares), and
-- app.current_tenant() honours the token only in that transaction: a valid token left in a
-- session, or set there by hand, is nobody's tenant (NULL: fail closed). A forged or expired token
-- is still an error, as in 0008.
-- migrate:up

SET LOCAL ROLE app_owner;

-- This transaction's stamp: the backend and the transaction's start (epoch microseconds, no time zone).
CREATE FUNCTION app_private.transaction_stamp() RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT pg_backend_pid()::text || '@' || (extract(epoch FROM now()) * 1000000)::bigint::text
$fn$;

CREATE OR REPLACE FUNCTION app.set_tenant(p_token text) RETURNS uuid
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM set_config('app.tenant_token', coalesce(p_token, ''), true);
    PERFORM set_config('app.tenant_transaction', app_private.transaction_stamp(), true);
    IF coalesce(p_token, '') = '' THEN
        RAISE EXCEPTION 'no tenant token given' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    RETURN app.current_tenant();
END
$fn$;

CREATE OR REPLACE FUNCTION app.current_tenant() RETURNS uuid
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
    tenant uuid;
BEGIN
    IF tok IS NULL OR tok = '' THEN
        RETURN NULL;
    END IF;
    msg := left(tok, -65);
    SELECT k.inner_key, k.outer_key INTO ik, ok FROM app_private.tenant_context_key k WHERE k.id = 1;
    -- nested IFs, not AND: the casts run only on a signed message (as in 0008)
    IF substr(tok, length(tok) - 64, 1) = '.' THEN
        IF encode(sha256(ok || sha256(ik || convert_to(msg, 'UTF8'))), 'hex') = right(tok, 64) THEN
            IF split_part(msg, '.', 3)::bigint > extract(epoch FROM now()) THEN
                tenant := split_part(msg, '.', 2)::uuid;
            END IF;
        END IF;
    END IF;
    IF tenant IS NULL THEN
        tenant := app_private.verify_tenant_token(tok);  -- raises, naming what is wrong
    END IF;
    -- a valid token set for another transaction (left in the session, or set by hand): nobody's tenant
    IF current_setting('app.tenant_transaction', true) IS DISTINCT FROM app_private.transaction_stamp() THEN
        RETURN NULL;
    END IF;
    RETURN tenant;
END
$fn$;

RESET ROLE;

-- migrate:down

SET LOCAL ROLE app_owner;

CREATE OR REPLACE FUNCTION app.current_tenant() RETURNS uuid
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

CREATE OR REPLACE FUNCTION app.set_tenant(p_token text) RETURNS uuid
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

DROP FUNCTION app_private.transaction_stamp();

RESET ROLE;
