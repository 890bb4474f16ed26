-- Virtual wallets and their append-only coin ledger.
--
-- A wallet's balance changes only by inserting into app.coin_transactions: a BEFORE INSERT
-- trigger locks the wallet row, refuses an overdraft or a reused idempotency key, moves the
-- balance and records balance_after, all in the inserting transaction. So the balance always
-- equals the sum of the wallet's transactions, and concurrent debits queue on the row lock
-- instead of racing. app.post_coin_transaction() is the idempotent way to post.
--
-- Signs by kind: credit, purchase (coins bought), reward and refund add (> 0); debit spends
-- (< 0); transfer is either (one leg per wallet).
-- migrate:up

SET LOCAL ROLE app_owner;

CREATE TABLE app.virtual_wallets (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES app.tenants (id) ON DELETE CASCADE,
    user_id uuid NOT NULL,
    currency text NOT NULL DEFAULT 'COIN',
    balance bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT virtual_wallets_tenant_id_id_key UNIQUE (tenant_id, id),
    -- An empty wallet goes with its user; one with ledger rows blocks the delete (see below).
    CONSTRAINT virtual_wallets_user_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES app.users (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT virtual_wallets_user_id_currency_key UNIQUE (user_id, currency),
    CONSTRAINT virtual_wallets_balance_check CHECK (balance >= 0),
    CONSTRAINT virtual_wallets_currency_check CHECK (currency ~ '^[A-Z][A-Z0-9_]{1,15}$')
);
CREATE INDEX virtual_wallets_tenant_id_user_id_idx ON app.virtual_wallets (tenant_id, user_id);
CREATE INDEX virtual_wallets_tenant_id_created_at_idx ON app.virtual_wallets (tenant_id, created_at);
CREATE TRIGGER virtual_wallets_set_updated_at BEFORE UPDATE ON app.virtual_wallets
    FOR EACH ROW EXECUTE FUNCTION app.set_updated_at();

CREATE TABLE app.coin_transactions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Ledger history is never removed by a cascade: a tenant, user or wallet with
    -- transactions cannot be hard-deleted (mark the user or tenant instead).
    tenant_id uuid NOT NULL REFERENCES app.tenants (id) ON DELETE RESTRICT,
    wallet_id uuid NOT NULL,
    amount bigint NOT NULL,
    kind text NOT NULL,
    -- Set by the trigger from the locked wallet; whatever the caller passes is overwritten.
    balance_after bigint NOT NULL,
    idempotency_key text NOT NULL,
    reference text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT coin_transactions_wallet_fkey FOREIGN KEY (tenant_id, wallet_id)
        REFERENCES app.virtual_wallets (tenant_id, id) ON DELETE RESTRICT,
    CONSTRAINT coin_transactions_wallet_id_idempotency_key_key UNIQUE (wallet_id, idempotency_key),
    CONSTRAINT coin_transactions_amount_check CHECK (amount <> 0),
    CONSTRAINT coin_transactions_kind_check
        CHECK (kind IN ('credit', 'debit', 'purchase', 'reward', 'refund', 'transfer')),
    CONSTRAINT coin_transactions_sign_check
        CHECK (CASE kind WHEN 'debit' THEN amount < 0 WHEN 'transfer' THEN true ELSE amount > 0 END),
    CONSTRAINT coin_transactions_balance_after_check CHECK (balance_after >= 0),
    CONSTRAINT coin_transactions_idempotency_key_check CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    CONSTRAINT coin_transactions_reference_check CHECK (reference IS NULL OR length(reference) <= 500)
);
CREATE INDEX coin_transactions_tenant_id_created_at_idx ON app.coin_transactions (tenant_id, created_at);
-- A wallet's history, newest first; also serves the (tenant_id, wallet_id) foreign key.
CREATE INDEX coin_transactions_tenant_id_wallet_id_created_at_idx
    ON app.coin_transactions (tenant_id, wallet_id, created_at);

-- Runs as app_owner (SECURITY DEFINER) because the application roles may not update wallets.
-- FORCE ROW LEVEL SECURITY (0006) still applies to app_owner, so the wallet is found only in
-- the tenant the session has set: another tenant's wallet looks missing.
CREATE FUNCTION app.coin_transactions_apply() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    old_balance bigint;
BEGIN
    -- The row lock serialises postings to one wallet; a waiter re-reads the committed balance.
    SELECT w.balance INTO old_balance
    FROM app.virtual_wallets w
    WHERE w.id = NEW.wallet_id AND w.tenant_id = NEW.tenant_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'wallet % not found in tenant %', NEW.wallet_id, NEW.tenant_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'coin_transactions_wallet_fkey';
    END IF;
    -- Checked under the lock, before the balance moves: INSERT ... ON CONFLICT DO NOTHING fires
    -- this trigger before it detects the conflict, and must not move the balance twice.
    IF EXISTS (
        SELECT 1 FROM app.coin_transactions t
        WHERE t.wallet_id = NEW.wallet_id AND t.idempotency_key = NEW.idempotency_key
    ) THEN
        RAISE EXCEPTION 'idempotency key % already used on wallet %', NEW.idempotency_key, NEW.wallet_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'coin_transactions_wallet_id_idempotency_key_key';
    END IF;
    IF old_balance + NEW.amount < 0 THEN
        RAISE EXCEPTION 'insufficient balance on wallet %: % % would go negative',
                NEW.wallet_id, old_balance, NEW.amount
            USING ERRCODE = 'check_violation', CONSTRAINT = 'virtual_wallets_balance_check';
    END IF;
    UPDATE app.virtual_wallets SET balance = old_balance + NEW.amount WHERE id = NEW.wallet_id;
    NEW.balance_after := old_balance + NEW.amount;
    RETURN NEW;
END
$fn$;

CREATE TRIGGER coin_transactions_apply BEFORE INSERT ON app.coin_transactions
    FOR EACH ROW EXECUTE FUNCTION app.coin_transactions_apply();

-- Append-only, for every role including the owner (privileges alone would not stop app_owner).
CREATE FUNCTION app.refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION '%.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE TRIGGER coin_transactions_append_only BEFORE UPDATE OR DELETE ON app.coin_transactions
    FOR EACH ROW EXECUTE FUNCTION app.refuse_change();
CREATE TRIGGER coin_transactions_no_truncate BEFORE TRUNCATE ON app.coin_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_change();

-- A wallet starts empty and its balance moves only from the ledger trigger above (trigger
-- depth 2); a direct UPDATE of balance is depth 1 and is refused, even for the owner.
CREATE FUNCTION app.virtual_wallets_guard_balance() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.balance <> 0 THEN
        RAISE EXCEPTION 'a new wallet starts at 0, got %; credit it through app.coin_transactions', NEW.balance
            USING ERRCODE = 'check_violation', CONSTRAINT = 'virtual_wallets_balance_check';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.balance IS DISTINCT FROM OLD.balance AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'wallet % balance changes only through app.coin_transactions', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$fn$;

CREATE TRIGGER virtual_wallets_guard_balance BEFORE INSERT OR UPDATE OF balance ON app.virtual_wallets
    FOR EACH ROW EXECUTE FUNCTION app.virtual_wallets_guard_balance();

-- Post one transaction idempotently: a replay with the same key returns the recorded row
-- (and refuses a replay whose amount or kind differ). The tenant comes from the wallet, which
-- row-level security shows only inside the session's tenant.
CREATE FUNCTION app.post_coin_transaction(
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

-- Wallets are created by the application but never updated by it (the balance is the
-- ledger's); ledger rows are inserted, never updated or deleted.
REVOKE UPDATE ON app.virtual_wallets FROM app_readwrite, platform_admin;
REVOKE UPDATE, DELETE ON app.coin_transactions FROM app_readwrite, platform_admin;
GRANT EXECUTE ON FUNCTION app.post_coin_transaction(uuid, bigint, text, text, text) TO app_readwrite, platform_admin;

RESET ROLE;

-- migrate:down

SET LOCAL ROLE app_owner;

DROP FUNCTION app.post_coin_transaction(uuid, bigint, text, text, text);
DROP TABLE app.coin_transactions;
DROP TABLE app.virtual_wallets;
DROP FUNCTION app.virtual_wallets_guard_balance();
DROP FUNCTION app.refuse_change();
DROP FUNCTION app.coin_transactions_apply();

RESET ROLE;
