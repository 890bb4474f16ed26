"""Concurrent debits on one wallet, from separate connections in parallel threads, never overdraw it."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import errors

from tests.fixtures.pg import PgDatabase
from tests.fixtures.schema import LoginFactory, build_world, use_tenant

WORKERS = 12
DEBIT = 30
BALANCE = 100  # room for 3 debits of 30: 9 of the 12 must be refused


def test_parallel_debits_never_drive_a_wallet_negative(schema_db: PgDatabase, login_as: LoginFactory) -> None:
    with schema_db.connect_admin(autocommit=True) as admin:
        world = build_world(admin, balance=BALANCE)
    user = login_as("app_readwrite")
    connections = [user.connect(autocommit=True) for _ in range(WORKERS)]
    barrier = threading.Barrier(WORKERS, timeout=30)
    outcomes: list[str] = []
    lock = threading.Lock()

    def debit(conn: psycopg.Connection[Any], n: int) -> None:
        try:
            with conn.transaction():
                use_tenant(conn, world.tenant_a)
                # everyone reads the same balance first, then races to spend it
                conn.execute("SELECT balance FROM app.virtual_wallets WHERE id = %s", (world.wallet_a,))
                barrier.wait()
                conn.execute(
                    "INSERT INTO app.coin_transactions (tenant_id, wallet_id, amount, kind, idempotency_key)"
                    " VALUES (%s, %s, %s, 'debit', %s)",
                    (world.tenant_a, world.wallet_a, -DEBIT, f"debit-{n}"),
                )
            outcome = "ok"
        except errors.CheckViolation:
            outcome = "refused"
        except Exception as exc:  # reported by the assertion below
            outcome = f"unexpected {type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=debit, args=(conn, n)) for n, conn in enumerate(connections)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for conn in connections:
            conn.close()

    assert sorted(outcomes) == ["ok"] * (BALANCE // DEBIT) + ["refused"] * (WORKERS - BALANCE // DEBIT)
    with schema_db.connect_admin(autocommit=True) as admin, admin.transaction():
        use_tenant(admin, world.tenant_a)
        row = admin.execute(
            "SELECT w.balance, (SELECT sum(amount) FROM app.coin_transactions t WHERE t.wallet_id = w.id),"
            " (SELECT min(balance_after) FROM app.coin_transactions t WHERE t.wallet_id = w.id)"
            " FROM app.virtual_wallets w WHERE w.id = %s",
            (world.wallet_a,),
        ).fetchone()
    assert row == (BALANCE % DEBIT, BALANCE % DEBIT, BALANCE % DEBIT)


def test_parallel_replays_of_one_idempotency_key_post_once(schema_db: PgDatabase, login_as: LoginFactory) -> None:
    with schema_db.connect_admin(autocommit=True) as admin:
        world = build_world(admin, balance=BALANCE)
    user = login_as("app_readwrite")
    connections = [user.connect(autocommit=True) for _ in range(WORKERS)]
    barrier = threading.Barrier(WORKERS, timeout=30)
    ids: list[object] = []
    lock = threading.Lock()

    def replay(conn: psycopg.Connection[Any]) -> None:
        try:
            with conn.transaction():
                use_tenant(conn, world.tenant_a)
                barrier.wait()
                row = conn.execute(
                    "SELECT id FROM app.post_coin_transaction(%s, -10, 'debit', 'checkout-42')", (world.wallet_a,)
                ).fetchone()
            result: object = row[0] if row else None
        except Exception as exc:  # reported by the assertion below
            result = f"unexpected {type(exc).__name__}: {exc}"
        with lock:
            ids.append(result)

    threads = [threading.Thread(target=replay, args=(conn,)) for conn in connections]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for conn in connections:
            conn.close()

    assert len(ids) == WORKERS
    assert len(set(ids)) == 1, ids  # every caller got the one recorded row
    with schema_db.connect_admin(autocommit=True) as admin, admin.transaction():
        use_tenant(admin, world.tenant_a)
        row = admin.execute(
            "SELECT balance, (SELECT count(*) FROM app.coin_transactions WHERE idempotency_key = 'checkout-42')"
            " FROM app.virtual_wallets WHERE id = %s",
            (world.wallet_a,),
        ).fetchone()
    assert row == (BALANCE - 10, 1)
