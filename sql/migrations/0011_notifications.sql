-- Notifications (API.md, *Notifications*): subscriptions that administrators make, and one
-- delivery row per event and subscription, which the notifications timer sends and retries.

CREATE TABLE subscriptions (
    subscription_id uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    channel         text        NOT NULL CHECK (channel IN ('webhook', 'teams')),
    -- Stored as given: a Teams Workflows URL carries its receiver's credential (`sig`) in its query.
    url             text        NOT NULL CHECK (length(url) <= 2048),
    events          text[]      NOT NULL CHECK (cardinality(events) >= 1 AND events <@ ARRAY[
                        'submitted', 'updated', 'approved', 'rejected', 'deleted', 'deprecated', 'reactivated',
                        'published', 'drifted', 'drift_accepted', 'probe_failed']),
    description     text        CHECK (length(description) <= 2000),
    -- The Standard Webhooks signing secret (`whsec_` + base64); none for Teams.
    secret          text        CHECK ((channel = 'webhook') = (secret IS NOT NULL)),
    created_by      uuid        NOT NULL REFERENCES users (user_id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Deleting keeps the row, so the delivery log keeps its subscription.
    deleted_at      timestamptz
);

CREATE TABLE deliveries (
    delivery_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id uuid        NOT NULL REFERENCES subscriptions (subscription_id),
    -- The audit entry delivered; null for a test delivery.
    log_id          bigint      REFERENCES audit_log (log_id),
    event           text        NOT NULL,
    -- The Standard Webhooks message id: the same on every attempt, so a receiver can drop repeats.
    webhook_id      text        NOT NULL UNIQUE,
    -- The body as first built: every attempt sends the same bytes' content.
    payload         jsonb       NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempt         integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    due_at          timestamptz NOT NULL DEFAULT now(),
    -- A claimed delivery is leased; a worker that dies leaves it due again when the lease ends.
    leased_until    timestamptz,
    status_code     integer,
    error           text        CHECK (length(error) <= 1000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempted_at    timestamptz,
    UNIQUE (subscription_id, log_id)
);
-- The round's claim: the oldest pending delivery of each subscription, due first.
CREATE INDEX idx_deliveries_pending ON deliveries (subscription_id, delivery_id) WHERE status = 'pending';
CREATE INDEX idx_deliveries_log ON deliveries (subscription_id, delivery_id DESC);

-- Notifications are the event outlet's `notifications` consumer (shared/events.py), enrolled here so
-- that they start from now: entries older than the migration are not announced.
INSERT INTO event_consumers (name, horizon) VALUES ('notifications', pg_snapshot_xmin(pg_current_snapshot()))
ON CONFLICT (name) DO NOTHING;
