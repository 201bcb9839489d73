-- Events and webhooks (issue 15): a transactional outbox, delivered at least
-- once by the worker fleet.

-- Every lifecycle change inserts its event here in the same transaction as
-- the change (the API's statements, the SQL functions, the sweeper, the
-- delete worker), so an event exists exactly when its change committed.
-- `id` is the public id: null until the worker's publisher numbers the
-- event. It numbers only events whose transaction is older than every
-- transaction still writing in this database (`txid`), so a reader that saw
-- id N never later sees a new event below N.
CREATE TABLE claimcheck.events (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- insert order
    id          bigint      UNIQUE,
    -- The inserting transaction (see above).
    txid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
    type        text        NOT NULL CHECK (type IN (
                    'upload.created', 'upload.completed', 'upload.discarded', 'upload.expired',
                    'object.consumed', 'object.delete_scheduled', 'object.deleted',
                    'object.delete_dead', 'quota.exceeded')),
    owner       text,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    data        jsonb       NOT NULL,
    published_at timestamptz
);
CREATE INDEX events_unpublished_idx ON claimcheck.events (txid, seq) WHERE id IS NULL;
CREATE INDEX events_published_idx ON claimcheck.events (published_at) WHERE id IS NOT NULL;
CREATE SEQUENCE claimcheck.event_ids AS bigint;

-- The worker's publisher wakes on new events.
CREATE FUNCTION claimcheck.notify_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('claimcheck_events', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER events_notify
    AFTER INSERT ON claimcheck.events
    FOR EACH STATEMENT EXECUTE FUNCTION claimcheck.notify_event();

-- The claim as events carry it: `row` is a claim row as JSON (`to_jsonb`).
CREATE FUNCTION claimcheck.claim_json(p_row jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'id', p_row->'id', 'key', p_row->'object_key', 'owner', p_row->'owner',
        'status', p_row->'status', 'size', p_row->'size', 'filename', p_row->'filename',
        'content_type', p_row->'content_type', 'public', p_row->'public',
        'sha256', p_row->'sha256', 'protocol', p_row->'protocol',
        'created_at', p_row->'created_at', 'expires_at', p_row->'expires_at',
        'uploaded_at', p_row->'uploaded_at')
$$;

-- The registry object as events carry it: `row` is an objects row as JSON.
CREATE FUNCTION claimcheck.object_json(p_row jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'key', p_row->'object_key', 'owner', p_row->'owner', 'size', p_row->'size',
        'content_type', p_row->'content_type', 'filename', p_row->'filename',
        'sha256', p_row->'sha256', 'public', p_row->'public',
        'created_at', p_row->'created_at', 'consumed_at', p_row->'consumed_at')
$$;

-- Receivers registered by admins. The secret is the Standard Webhooks
-- signing key (`whsec_` + base64), shown once when the endpoint is made.
CREATE TABLE claimcheck.webhook_endpoints (
    id          uuid        PRIMARY KEY,
    url         text        NOT NULL,
    events      text[]      NOT NULL,   -- event types, or '*'
    description text,
    secret      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per event and matching endpoint, made by the publisher. A row is,
-- like a delete row, exactly one of: done (done_at), dead (dead_at), leased
-- (leased_until > now()), due (next_attempt_at <= now()) or deferred.
CREATE TABLE claimcheck.webhook_deliveries (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        bigint      NOT NULL REFERENCES claimcheck.events (id) ON DELETE CASCADE,
    endpoint_id     uuid        NOT NULL REFERENCES claimcheck.webhook_endpoints (id)
                                ON DELETE CASCADE,
    attempts        integer     NOT NULL DEFAULT 0,   -- counts leases
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_until    timestamptz,
    lease_token     uuid,
    last_status     integer,
    last_error      text,
    done_at         timestamptz,
    dead_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due_idx ON claimcheck.webhook_deliveries (next_attempt_at)
    WHERE done_at IS NULL AND dead_at IS NULL;
CREATE INDEX webhook_deliveries_endpoint_idx ON claimcheck.webhook_deliveries (endpoint_id);

CREATE FUNCTION claimcheck.notify_delivery() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('claimcheck_webhook_deliveries', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_deliveries_notify
    AFTER INSERT ON claimcheck.webhook_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION claimcheck.notify_delivery();

-- The SQL functions announce what they do, in the caller's transaction: a
-- business transaction that rolls back leaves no event.

CREATE OR REPLACE FUNCTION claimcheck.consume_claims(p_owner text, p_keys text[])
RETURNS SETOF claimcheck.objects
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    wanted  text[];
    found   text[];
    missing text[];
BEGIN
    SELECT coalesce(array_agg(DISTINCT k ORDER BY k), '{}')
      INTO wanted
      FROM unnest(coalesce(p_keys, '{}')) AS k;

    -- Lock in key order, so two transactions consuming overlapping sets wait
    -- for each other instead of deadlocking. A row another transaction
    -- consumed while we waited is gone when the lock is granted, and counts
    -- as missing here.
    SELECT coalesce(array_agg(object_key ORDER BY object_key), '{}')
      INTO found
      FROM (SELECT c.object_key
              FROM claimcheck.upload_claims c
             WHERE c.object_key = ANY (wanted)
               AND c.owner = p_owner
               AND c.status = 'uploaded'
               AND c.concat IS DISTINCT FROM 'partial'
             ORDER BY c.object_key
               FOR UPDATE) AS locked;

    IF cardinality(found) <> cardinality(wanted) THEN
        SELECT array_agg(k ORDER BY k) INTO missing
          FROM unnest(wanted) AS k
         WHERE NOT (k = ANY (found));
        RAISE EXCEPTION 'claims not found, pending, partial or owned by someone else: %',
                        array_to_string(missing, ', ')
              USING ERRCODE = 'P0002',
                    DETAIL = json_build_object('missing', missing)::text;
    END IF;

    RETURN QUERY
    WITH moved AS (
        DELETE FROM claimcheck.upload_claims c
         WHERE c.object_key = ANY (found)
        RETURNING c.*
    ), registered AS (
        INSERT INTO claimcheck.objects
               (object_key, owner, size, content_type, filename, sha256, public, created_at)
        SELECT m.object_key, m.owner, m.size, m.content_type, m.filename, m.sha256, m.public,
               m.created_at
          FROM moved m
        RETURNING *
    ), announced AS (
        INSERT INTO claimcheck.events (type, owner, data)
        SELECT 'object.consumed', r.owner, claimcheck.object_json(to_jsonb(r))
          FROM registered r
    )
    SELECT * FROM registered;
END
$$;

-- schedule_delete as in V3, announcing the delete.
CREATE OR REPLACE FUNCTION claimcheck.schedule_delete(p_key text, p_reason text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    queued bigint;
BEGIN
    IF p_reason IS NULL OR p_reason NOT IN ('replaced', 'deleted') THEN
        RAISE EXCEPTION 'delete reason must be replaced or deleted, not %', p_reason
              USING ERRCODE = '22023';
    END IF;
    IF p_key IS NULL OR p_key = '' THEN
        RAISE EXCEPTION 'object key must not be empty' USING ERRCODE = '22023';
    END IF;
    IF NOT claimcheck.in_key_space(p_key) THEN
        RAISE EXCEPTION 'object key % is outside the service''s key space', p_key
              USING ERRCODE = '22023',
                    HINT = 'keys start with CLAIMCHECK_KEY_PREFIX, then pub/ or priv/';
    END IF;
    -- Share-lock the claim, if any, so a claim consumed meanwhile is seen as
    -- the registry row it became rather than missed by both checks.
    PERFORM 1 FROM claimcheck.upload_claims WHERE object_key = p_key FOR SHARE;
    IF FOUND THEN
        RAISE EXCEPTION 'object key % is still an upload claim', p_key
              USING ERRCODE = '55000',
                    HINT = 'the uploader discards it, or it expires';
    END IF;
    WITH removed AS (
        DELETE FROM claimcheck.objects WHERE object_key = p_key RETURNING *
    )
    INSERT INTO claimcheck.events (type, owner, data)
    SELECT 'object.delete_scheduled', r.owner,
           claimcheck.object_json(to_jsonb(r)) || jsonb_build_object('reason', p_reason)
      FROM removed r;
    IF NOT FOUND THEN
        -- No registry row (deleted twice, or never consumed): the delete is
        -- still queued, and said so.
        INSERT INTO claimcheck.events (type, owner, data)
        VALUES ('object.delete_scheduled', NULL,
                jsonb_build_object('key', p_key, 'reason', p_reason));
    END IF;
    INSERT INTO claimcheck.pending_deletes (object_key, reason)
    VALUES (p_key, p_reason)
    RETURNING id INTO queued;
    RETURN queued;
END
$$;
