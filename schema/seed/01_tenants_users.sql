-- Development data: two tenants, their users and role assignments. Never for production
-- (`python -m infra seed` refuses there). Idempotent: fixed ids and ON CONFLICT DO NOTHING,
-- so a second run changes nothing. Row-level security is forced even for the owner, so each
-- block first sets the tenant it writes to (transaction-local: the loader runs one transaction).
--
-- Ids: tenants 10000000-..., users 20000000-..., subscriptions 30000000-..., wallets 40000000-...,
-- API keys 50000000-...; the last digits group them by tenant (…1x Acme, …2x Globex).
-- Password hashes are well-formed placeholders, not the hash of any password: set real ones
-- through the application.

-- Acme Corp ---------------------------------------------------------------------------------
SELECT app.set_tenant(app.mint_tenant_token('10000000-0000-4000-8000-000000000001'));

INSERT INTO app.tenants (id, slug, name, domain, subscription_tier, status) VALUES
    ('10000000-0000-4000-8000-000000000001', 'acme', 'Acme Corp', 'acme.example.com', 'pro', 'active')
ON CONFLICT DO NOTHING;

INSERT INTO app.users
    (id, tenant_id, email, password_hash, display_name, given_name, family_name, locale, time_zone,
     status, email_verified_at, last_login_at)
VALUES
    ('20000000-0000-4000-8000-000000000011', '10000000-0000-4000-8000-000000000001',
     'alice@acme.example.com', '$argon2id$v=19$m=65536,t=3,p=4$c2VlZC1hbGljZQ$cGxhY2Vob2xkZXItbm90LWEtaGFzaA',
     'Alice Admin', 'Alice', 'Anders', 'en-US', 'America/New_York',
     'active', '2026-01-05 09:00:00+00', '2026-11-20 08:30:00+00'),
    ('20000000-0000-4000-8000-000000000012', '10000000-0000-4000-8000-000000000001',
     'bob@acme.example.com', '$argon2id$v=19$m=65536,t=3,p=4$c2VlZC1ib2I$cGxhY2Vob2xkZXItbm90LWEtaGFzaA',
     'Bob Builder', 'Bob', 'Baker', 'en-GB', 'Europe/London',
     'active', '2026-02-11 10:15:00+00', '2026-11-21 17:45:00+00'),
    ('20000000-0000-4000-8000-000000000013', '10000000-0000-4000-8000-000000000001',
     'carol@acme.example.com', NULL,
     'Carol (SSO)', 'Carol', 'Chen', 'de', 'Europe/Berlin',
     'suspended', '2026-03-02 12:00:00+00', NULL)
ON CONFLICT DO NOTHING;

INSERT INTO app.user_roles (tenant_id, user_id, role_id, assigned_by, assigned_at, status)
SELECT '10000000-0000-4000-8000-000000000001', v.user_id::uuid, r.id, v.assigned_by::uuid,
       '2026-03-02 12:05:00+00', v.status
FROM (VALUES
    ('20000000-0000-4000-8000-000000000011', 'super_admin', NULL, 'active'),
    ('20000000-0000-4000-8000-000000000011', 'tenant_admin', NULL, 'active'),
    ('20000000-0000-4000-8000-000000000012', 'member', '20000000-0000-4000-8000-000000000011', 'active'),
    ('20000000-0000-4000-8000-000000000013', 'member', '20000000-0000-4000-8000-000000000011', 'revoked')
) AS v (user_id, role, assigned_by, status)
JOIN app.roles r ON r.name = v.role
ON CONFLICT DO NOTHING;

-- Globex Inc ---------------------------------------------------------------------------------
SELECT app.set_tenant(app.mint_tenant_token('10000000-0000-4000-8000-000000000002'));

INSERT INTO app.tenants (id, slug, name, domain, subscription_tier, status) VALUES
    ('10000000-0000-4000-8000-000000000002', 'globex', 'Globex Inc', NULL, 'starter', 'active')
ON CONFLICT DO NOTHING;

INSERT INTO app.users
    (id, tenant_id, email, password_hash, display_name, given_name, family_name, locale, time_zone,
     status, email_verified_at, last_login_at)
VALUES
    ('20000000-0000-4000-8000-000000000021', '10000000-0000-4000-8000-000000000002',
     'dana@globex.example.org', '$argon2id$v=19$m=65536,t=3,p=4$c2VlZC1kYW5h$cGxhY2Vob2xkZXItbm90LWEtaGFzaA',
     'Dana Director', 'Dana', 'Diaz', 'es', 'Europe/Madrid',
     'active', '2026-04-01 08:00:00+00', '2026-11-22 07:10:00+00'),
    ('20000000-0000-4000-8000-000000000022', '10000000-0000-4000-8000-000000000002',
     'eve@globex.example.org', '$argon2id$v=19$m=65536,t=3,p=4$c2VlZC1ldmU$cGxhY2Vob2xkZXItbm90LWEtaGFzaA',
     'Eve Engineer', 'Eve', 'Evans', 'en', 'UTC',
     'active', NULL, NULL),
    -- same address as a user of Acme: emails are unique per tenant only
    ('20000000-0000-4000-8000-000000000023', '10000000-0000-4000-8000-000000000002',
     'Bob@Acme.example.com', '$argon2id$v=19$m=65536,t=3,p=4$c2VlZC1ib2Iy$cGxhY2Vob2xkZXItbm90LWEtaGFzaA',
     'Bob (contractor)', 'Bob', 'Baker', 'en-GB', 'Europe/London',
     'active', '2026-05-20 14:00:00+00', '2026-11-01 09:00:00+00')
ON CONFLICT DO NOTHING;

INSERT INTO app.user_roles (tenant_id, user_id, role_id, assigned_by, assigned_at, status)
SELECT '10000000-0000-4000-8000-000000000002', v.user_id::uuid, r.id, v.assigned_by::uuid,
       '2026-05-20 14:05:00+00', 'active'
FROM (VALUES
    ('20000000-0000-4000-8000-000000000021', 'tenant_admin', NULL),
    ('20000000-0000-4000-8000-000000000022', 'member', '20000000-0000-4000-8000-000000000021'),
    ('20000000-0000-4000-8000-000000000023', 'member', '20000000-0000-4000-8000-000000000021')
) AS v (user_id, role, assigned_by)
JOIN app.roles r ON r.name = v.role
ON CONFLICT DO NOTHING;
