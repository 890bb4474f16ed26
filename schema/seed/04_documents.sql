-- Development data: a few documents per tenant (the content itself lives in object storage; the
-- rows hold its SHA-256). Idempotent: fixed ids, ON CONFLICT DO NOTHING. Ids 60000000-...

SELECT app.set_tenant(app.mint_tenant_token('10000000-0000-4000-8000-000000000001'));

INSERT INTO app.documents (id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at) VALUES
    ('60000000-0000-4000-8000-000000000011', '10000000-0000-4000-8000-000000000001',
     '20000000-0000-4000-8000-000000000011', 'Q3 board report', sha256('acme q3 board report'::bytea),
     '{"kind": "report", "size_bytes": 482133, "mime": "application/pdf"}',
     '2026-10-02 09:00:00+00', '2026-10-02 09:00:00+00'),
    ('60000000-0000-4000-8000-000000000012', '10000000-0000-4000-8000-000000000001',
     '20000000-0000-4000-8000-000000000012', 'Invoice 2026-0117', sha256('acme invoice 2026-0117'::bytea),
     '{"kind": "invoice", "size_bytes": 91022, "mime": "application/pdf", "amount_cents": 129900}',
     '2026-11-03 14:20:00+00', '2026-11-03 14:20:00+00')
ON CONFLICT DO NOTHING;

SELECT app.set_tenant(app.mint_tenant_token('10000000-0000-4000-8000-000000000002'));

INSERT INTO app.documents (id, tenant_id, user_id, title, content_hash, metadata, created_at, updated_at) VALUES
    ('60000000-0000-4000-8000-000000000021', '10000000-0000-4000-8000-000000000002',
     '20000000-0000-4000-8000-000000000021', 'Onboarding checklist', sha256('globex onboarding checklist'::bytea),
     '{"kind": "note", "size_bytes": 2210, "mime": "text/markdown"}',
     '2026-11-16 08:00:00+00', '2026-11-16 08:00:00+00')
ON CONFLICT DO NOTHING;

SELECT set_config('app.tenant_token', '', true);
