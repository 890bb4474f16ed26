-- Documents: a tenant's files, described here and stored elsewhere (object storage) by content hash.
-- Tenant-scoped like every other table: composite tenant-safe foreign keys, forced RLS on the
-- signed tenant context (0008), the platform_admin policy.
-- migrate:up

SET LOCAL ROLE app_owner;

CREATE TABLE app.documents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES app.tenants (id) ON DELETE CASCADE,
    -- The author; the document belongs to the tenant and outlives that user.
    user_id uuid,
    title text NOT NULL,
    -- SHA-256 of the content: finds the object in storage and detects a changed or corrupt copy.
    content_hash bytea NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT documents_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT documents_user_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES app.users (tenant_id, id) ON DELETE SET NULL (user_id),
    CONSTRAINT documents_title_check CHECK (length(btrim(title)) BETWEEN 1 AND 500),
    CONSTRAINT documents_content_hash_check CHECK (octet_length(content_hash) = 32),
    CONSTRAINT documents_metadata_check CHECK (jsonb_typeof(metadata) = 'object')
);
CREATE INDEX documents_tenant_id_created_at_idx ON app.documents (tenant_id, created_at);
-- A user's documents, newest first; also serves the (tenant_id, user_id) foreign key.
CREATE INDEX documents_tenant_id_user_id_created_at_idx ON app.documents (tenant_id, user_id, created_at);
-- Searching metadata by containment: metadata @> '{"kind": "invoice"}'.
CREATE INDEX documents_metadata_idx ON app.documents USING gin (metadata jsonb_path_ops);
CREATE TRIGGER documents_set_updated_at BEFORE UPDATE ON app.documents
    FOR EACH ROW EXECUTE FUNCTION app.set_updated_at();

ALTER TABLE app.documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.documents
    USING (tenant_id = (SELECT app.current_tenant()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant()));
CREATE POLICY platform_admin_all ON app.documents TO platform_admin USING (true) WITH CHECK (true);

RESET ROLE;

-- migrate:down

SET LOCAL ROLE app_owner;

DROP TABLE app.documents;

RESET ROLE;
