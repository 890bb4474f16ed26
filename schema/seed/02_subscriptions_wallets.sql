-- Development data: subscriptions, wallets and their ledger. Ledger rows go through
-- app.post_coin_transaction with fixed idempotency keys: a second run returns the recorded
-- rows and moves no balance.

-- Acme Corp ---------------------------------------------------------------------------------
SELECT app.set_tenant(app.mint_tenant_token('10000000-0000-4000-8000-000000000001'));

INSERT INTO app.subscriptions
    (id, tenant_id, user_id, plan, status, current_period_start, current_period_end,
     cancel_at, canceled_at, external_customer_id, external_subscription_id)
VALUES
    ('30000000-0000-4000-8000-000000000011', '10000000-0000-4000-8000-000000000001',
     '20000000-0000-4000-8000-000000000011', 'starter', 'canceled',
     '2026-01-05 00:00:00+00', '2026-02-05 00:00:00+00', NULL, '2026-02-01 10:00:00+00',
     'cus_dev_acme', 'sub_dev_acme_starter'),
    ('30000000-0000-4000-8000-000000000012', '10000000-0000-4000-8000-000000000001',
     '20000000-0000-4000-8000-000000000011', 'pro', 'active',
     '2026-11-05 00:00:00+00', '2026-12-05 00:00:00+00', NULL, NULL,
     'cus_dev_acme', 'sub_dev_acme_pro')
ON CONFLICT DO NOTHING;

INSERT INTO app.virtual_wallets (id, tenant_id, user_id, currency) VALUES
    ('40000000-0000-4000-8000-000000000011', '10000000-0000-4000-8000-000000000001',
     '20000000-0000-4000-8000-000000000011', 'COIN'),
    ('40000000-0000-4000-8000-000000000012', '10000000-0000-4000-8000-000000000001',
     '20000000-0000-4000-8000-000000000012', 'COIN'),
    ('40000000-0000-4000-8000-000000000013', '10000000-0000-4000-8000-000000000001',
     '20000000-0000-4000-8000-000000000012', 'GEM')
ON CONFLICT DO NOTHING;

SELECT app.post_coin_transaction(w::uuid, amount, kind, key, ref)
FROM (VALUES
    (1, '40000000-0000-4000-8000-000000000011', 1000, 'purchase', 'seed-acme-alice-1', 'order:dev-1001'),
    (2, '40000000-0000-4000-8000-000000000011', 50, 'reward', 'seed-acme-alice-2', 'campaign:welcome'),
    (3, '40000000-0000-4000-8000-000000000011', -200, 'transfer', 'seed-acme-alice-3', 'transfer:dev-1'),
    (4, '40000000-0000-4000-8000-000000000012', 200, 'transfer', 'seed-acme-bob-1', 'transfer:dev-1'),
    (5, '40000000-0000-4000-8000-000000000012', -75, 'debit', 'seed-acme-bob-2', 'item:sword'),
    (6, '40000000-0000-4000-8000-000000000012', 25, 'refund', 'seed-acme-bob-3', 'item:sword'),
    (7, '40000000-0000-4000-8000-000000000013', 10, 'reward', 'seed-acme-bob-gem-1', 'achievement:first-login')
) AS t (n, w, amount, kind, key, ref)
ORDER BY n;

-- Globex Inc ---------------------------------------------------------------------------------
SELECT app.set_tenant(app.mint_tenant_token('10000000-0000-4000-8000-000000000002'));

INSERT INTO app.subscriptions
    (id, tenant_id, user_id, plan, status, current_period_start, current_period_end,
     cancel_at, canceled_at, external_customer_id, external_subscription_id)
VALUES
    ('30000000-0000-4000-8000-000000000021', '10000000-0000-4000-8000-000000000002',
     '20000000-0000-4000-8000-000000000021', 'starter', 'trialing',
     '2026-11-15 00:00:00+00', '2026-11-29 00:00:00+00', '2026-11-29 00:00:00+00', NULL,
     'cus_dev_globex', 'sub_dev_globex_starter')
ON CONFLICT DO NOTHING;

INSERT INTO app.virtual_wallets (id, tenant_id, user_id, currency) VALUES
    ('40000000-0000-4000-8000-000000000021', '10000000-0000-4000-8000-000000000002',
     '20000000-0000-4000-8000-000000000021', 'COIN'),
    ('40000000-0000-4000-8000-000000000022', '10000000-0000-4000-8000-000000000002',
     '20000000-0000-4000-8000-000000000022', 'COIN')
ON CONFLICT DO NOTHING;

SELECT app.post_coin_transaction(w::uuid, amount, kind, key, ref)
FROM (VALUES
    (1, '40000000-0000-4000-8000-000000000021', 300, 'credit', 'seed-globex-dana-1', 'grant:onboarding'),
    (2, '40000000-0000-4000-8000-000000000021', -120, 'debit', 'seed-globex-dana-2', 'item:report-pack'),
    (3, '40000000-0000-4000-8000-000000000022', 40, 'reward', 'seed-globex-eve-1', 'campaign:referral')
) AS t (n, w, amount, kind, key, ref)
ORDER BY n;
