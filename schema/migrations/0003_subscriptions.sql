-- Subscriptions: a tenant's plan with the billing provider (e.g. Stripe), optionally bought by a user.
-- migrate:up

SET LOCAL ROLE app_owner;

CREATE TABLE app.subscriptions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES app.tenants (id) ON DELETE CASCADE,
    -- The user who bought it; the subscription belongs to the tenant and outlives that user.
    user_id uuid,
    plan text NOT NULL,
    status text NOT NULL DEFAULT 'trialing',
    current_period_start timestamptz NOT NULL,
    current_period_end timestamptz NOT NULL,
    cancel_at timestamptz,
    canceled_at timestamptz,
    external_customer_id text,
    external_subscription_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT subscriptions_user_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES app.users (tenant_id, id) ON DELETE SET NULL (user_id),
    -- A provider's subscription is recorded once. Customer ids repeat (a customer re-subscribes
    -- after canceling), so they are indexed, not unique.
    CONSTRAINT subscriptions_external_subscription_id_key UNIQUE (external_subscription_id),
    CONSTRAINT subscriptions_plan_check CHECK (plan IN ('free', 'starter', 'pro', 'enterprise')),
    CONSTRAINT subscriptions_status_check CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    CONSTRAINT subscriptions_period_check CHECK (current_period_end > current_period_start),
    CONSTRAINT subscriptions_canceled_check CHECK ((status = 'canceled') = (canceled_at IS NOT NULL)),
    CONSTRAINT subscriptions_external_ids_check CHECK (
        (external_customer_id IS NULL OR length(external_customer_id) BETWEEN 1 AND 255)
        AND (external_subscription_id IS NULL OR length(external_subscription_id) BETWEEN 1 AND 255)
    )
);
CREATE INDEX subscriptions_tenant_id_created_at_idx ON app.subscriptions (tenant_id, created_at);
CREATE INDEX subscriptions_tenant_id_user_id_idx ON app.subscriptions (tenant_id, user_id);
CREATE INDEX subscriptions_user_id_status_idx ON app.subscriptions (user_id, status);
CREATE INDEX subscriptions_external_customer_id_idx ON app.subscriptions (external_customer_id);
-- The renewal job: live subscriptions whose period ends soon.
CREATE INDEX subscriptions_renewal_idx ON app.subscriptions (current_period_end)
    WHERE status IN ('trialing', 'active', 'past_due');
CREATE TRIGGER subscriptions_set_updated_at BEFORE UPDATE ON app.subscriptions
    FOR EACH ROW EXECUTE FUNCTION app.set_updated_at();

RESET ROLE;

-- migrate:down

SET LOCAL ROLE app_owner;

DROP TABLE app.subscriptions;

RESET ROLE;
