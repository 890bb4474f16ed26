-- Development data: audit entries and one API key per tenant.
-- The API keys' plain values are dev-only and public: dev_acme_key_0001 and dev_globex_key_0001
-- (key_hash is their SHA-256; prefix is the first characters).

-- Acme Corp ---------------------------------------------------------------------------------
SELECT app.set_tenant(app.mint_tenant_token('10000000-0000-4000-8000-000000000001'));

INSERT INTO app.tenant_api_keys (id, tenant_id, name, prefix, key_hash, permissions, created_by, created_at, expires_at)
VALUES
    ('50000000-0000-4000-8000-000000000011', '10000000-0000-4000-8000-000000000001', 'CI pipeline',
     'dev_acme_key', sha256('dev_acme_key_0001'::bytea), '{wallet:read,users:read}',
     '20000000-0000-4000-8000-000000000011', '2026-06-01 09:00:00+00', '2027-06-01 09:00:00+00')
ON CONFLICT DO NOTHING;

-- The audit log has identity ids, so a replay is recognised by its content.
INSERT INTO app.audit_logs (tenant_id, user_id, action, resource_type, resource_id, details, ip_address, occurred_at)
SELECT v.tenant_id::uuid, v.user_id::uuid, v.action, v.resource_type, v.resource_id, v.details::jsonb,
       v.ip::inet, v.occurred_at::timestamptz
FROM (VALUES
    ('10000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000011', 'user.login', 'user',
     '20000000-0000-4000-8000-000000000011', '{"method": "password"}', '203.0.113.10', '2026-11-20 08:30:00+00'),
    ('10000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000011', 'user.suspend', 'user',
     '20000000-0000-4000-8000-000000000013', '{"reason": "left the company"}', '203.0.113.10',
     '2026-11-20 08:35:00+00'),
    ('10000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000011', 'api_key.create', 'api_key',
     '50000000-0000-4000-8000-000000000011', '{"name": "CI pipeline"}', '203.0.113.10', '2026-06-01 09:00:00+00'),
    ('10000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000012', 'wallet.debit', 'wallet',
     '40000000-0000-4000-8000-000000000012', '{"amount": -75, "item": "sword"}', '198.51.100.7',
     '2026-11-21 17:50:00+00')
) AS v (tenant_id, user_id, action, resource_type, resource_id, details, ip, occurred_at)
WHERE NOT EXISTS (
    SELECT 1 FROM app.audit_logs a
    WHERE a.tenant_id = v.tenant_id::uuid AND a.action = v.action AND a.resource_id = v.resource_id
      AND a.occurred_at = v.occurred_at::timestamptz
);

-- Globex Inc ---------------------------------------------------------------------------------
SELECT app.set_tenant(app.mint_tenant_token('10000000-0000-4000-8000-000000000002'));

INSERT INTO app.tenant_api_keys (id, tenant_id, name, prefix, key_hash, permissions, created_by, created_at, revoked_at)
VALUES
    ('50000000-0000-4000-8000-000000000021', '10000000-0000-4000-8000-000000000002', 'Old integration',
     'dev_globex_key', sha256('dev_globex_key_0001'::bytea), '{wallet:read}',
     '20000000-0000-4000-8000-000000000021', '2026-05-01 09:00:00+00', '2026-10-01 09:00:00+00')
ON CONFLICT DO NOTHING;

INSERT INTO app.audit_logs (tenant_id, user_id, action, resource_type, resource_id, details, ip_address, occurred_at)
SELECT v.tenant_id::uuid, v.user_id::uuid, v.action, v.resource_type, v.resource_id, v.details::jsonb,
       v.ip::inet, v.occurred_at::timestamptz
FROM (VALUES
    ('10000000-0000-4000-8000-000000000002', '20000000-0000-4000-8000-000000000021', 'subscription.start', 'subscription',
     '30000000-0000-4000-8000-000000000021', '{"plan": "starter", "trial_days": 14}', '192.0.2.44',
     '2026-11-15 00:00:00+00'),
    ('10000000-0000-4000-8000-000000000002', '20000000-0000-4000-8000-000000000021', 'api_key.revoke', 'api_key',
     '50000000-0000-4000-8000-000000000021', '{"name": "Old integration"}', '192.0.2.44', '2026-10-01 09:00:00+00')
) AS v (tenant_id, user_id, action, resource_type, resource_id, details, ip, occurred_at)
WHERE NOT EXISTS (
    SELECT 1 FROM app.audit_logs a
    WHERE a.tenant_id = v.tenant_id::uuid AND a.action = v.action AND a.resource_id = v.resource_id
      AND a.occurred_at = v.occurred_at::timestamptz
);

SELECT set_config('app.tenant_token', '', true);
