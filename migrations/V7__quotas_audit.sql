-- Quotas, owner-bound consume tokens and the audit log (issue 16).

-- A consume token bound to these owners acts for them only (NULL: every
-- owner, as before).
ALTER TABLE claimcheck.api_tokens
    ADD COLUMN owners text[] CHECK (owners IS NULL OR cardinality(owners) > 0);

-- Per-owner overrides of the configured quotas: NULL takes the default,
-- 0 means no limit for this owner.
CREATE TABLE claimcheck.owner_quotas (
    owner         text        PRIMARY KEY,
    bytes         bigint      CHECK (bytes >= 0),
    daily_bytes   bigint      CHECK (daily_bytes >= 0),
    daily_uploads bigint      CHECK (daily_uploads >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- What each owner started per UTC day: one row per owner and day, bumped in
-- the transaction that creates the claim (under the owner's advisory lock),
-- so a daily quota is one indexed read, never a scan of the claims. Pruned
-- with the audit log.
CREATE TABLE claimcheck.owner_daily_usage (
    owner   text   NOT NULL,
    day     date   NOT NULL,
    uploads bigint NOT NULL DEFAULT 0,
    bytes   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, day)
);
CREATE INDEX owner_daily_usage_day_idx ON claimcheck.owner_daily_usage (day);

-- Security-relevant actions, appended and never updated (the trigger below).
-- `actor` is who acted: a token (`actor_token_id`, `actor_owner`), `sql`
-- (the SQL functions called directly; `actor_owner` is the session's role),
-- `cli`, `worker`, or `anonymous` (refused authentications).
CREATE TABLE claimcheck.audit_log (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text        NOT NULL
                   CHECK (actor IN ('token', 'sql', 'cli', 'worker', 'anonymous')),
    actor_token_id uuid,
    actor_owner    text,
    action         text        NOT NULL,
    target         text,
    detail         jsonb       NOT NULL DEFAULT '{}',
    request_id     text
);
-- The admin query pages newest first (id DESC), filtered by action or actor.
CREATE INDEX audit_log_action_idx ON claimcheck.audit_log (action, id);
CREATE INDEX audit_log_actor_owner_idx ON claimcheck.audit_log (actor_owner, id);
CREATE INDEX audit_log_actor_token_idx ON claimcheck.audit_log (actor_token_id, id)
    WHERE actor_token_id IS NOT NULL;
CREATE INDEX audit_log_at_idx ON claimcheck.audit_log (at);

CREATE FUNCTION claimcheck.audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'claimcheck.audit_log is append-only' USING ERRCODE = '42501';
END
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE ON claimcheck.audit_log
    FOR EACH ROW EXECUTE FUNCTION claimcheck.audit_log_append_only();

-- Appends one audit row. `p_actor` is `{"kind", "token_id"?, "owner"?,
-- "request_id"?}`, as the service passes it.
CREATE FUNCTION claimcheck.audit(p_actor jsonb, p_action text, p_target text, p_detail jsonb)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO claimcheck.audit_log
           (actor, actor_token_id, actor_owner, action, target, detail, request_id)
    VALUES (coalesce(p_actor->>'kind', 'sql'), (p_actor->>'token_id')::uuid,
            p_actor->>'owner', p_action, p_target, coalesce(p_detail, '{}'),
            p_actor->>'request_id')
$$;

-- Who calls the SQL functions directly: the session's role.
CREATE FUNCTION claimcheck.sql_actor() RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT jsonb_build_object('kind', 'sql', 'owner', session_user::text) $$;

-- consume_claims as in V6, for an actor (the audit row's) and, for an
-- owner-bound token, the owners it may act for: another owner's claims are
-- missing, as unknown ones are.
CREATE FUNCTION claimcheck.consume_claims_as(
    p_actor jsonb, p_owners text[], p_owner text, p_keys text[])
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
               AND (p_owners IS NULL OR p_owner = ANY (p_owners))
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

    PERFORM claimcheck.audit(p_actor, 'objects.consumed', p_owner,
                             jsonb_build_object('keys', to_jsonb(found)));

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

-- The contract's function: the caller is `sql` and may act for any owner.
CREATE OR REPLACE FUNCTION claimcheck.consume_claims(p_owner text, p_keys text[])
RETURNS SETOF claimcheck.objects
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM claimcheck.consume_claims_as(claimcheck.sql_actor(), NULL, p_owner, p_keys)
$$;

-- schedule_delete as in V6, for an actor and, for an owner-bound token, the
-- owners it may act for: a registry row or claim of another owner answers
-- P0002 (not found), as if it did not exist.
CREATE FUNCTION claimcheck.schedule_delete_as(
    p_actor jsonb, p_owners text[], p_key text, p_reason text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    queued      bigint;
    claim_owner text;
    held_by     text;
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
    SELECT owner INTO claim_owner
      FROM claimcheck.upload_claims WHERE object_key = p_key FOR SHARE;
    IF FOUND THEN
        IF p_owners IS NOT NULL AND NOT (claim_owner = ANY (p_owners)) THEN
            RAISE EXCEPTION 'object % not found', p_key USING ERRCODE = 'P0002';
        END IF;
        RAISE EXCEPTION 'object key % is still an upload claim', p_key
              USING ERRCODE = '55000',
                    HINT = 'the uploader discards it, or it expires';
    END IF;
    IF p_owners IS NOT NULL THEN
        SELECT owner INTO held_by FROM claimcheck.objects WHERE object_key = p_key FOR UPDATE;
        IF FOUND AND NOT (held_by = ANY (p_owners)) THEN
            RAISE EXCEPTION 'object % not found', p_key USING ERRCODE = 'P0002';
        END IF;
    END IF;
    WITH removed AS (
        DELETE FROM claimcheck.objects WHERE object_key = p_key RETURNING *
    )
    INSERT INTO claimcheck.events (type, owner, data)
    SELECT 'object.delete_scheduled', r.owner,
           claimcheck.object_json(to_jsonb(r)) || jsonb_build_object('reason', p_reason)
      FROM removed r
    RETURNING owner INTO held_by;
    IF NOT FOUND THEN
        -- No registry row (deleted twice, or never consumed): the delete is
        -- still queued, and said so.
        held_by := NULL;
        INSERT INTO claimcheck.events (type, owner, data)
        VALUES ('object.delete_scheduled', NULL,
                jsonb_build_object('key', p_key, 'reason', p_reason));
    END IF;
    INSERT INTO claimcheck.pending_deletes (object_key, reason)
    VALUES (p_key, p_reason)
    RETURNING id INTO queued;
    PERFORM claimcheck.audit(p_actor, 'delete.scheduled', p_key,
                             jsonb_strip_nulls(jsonb_build_object(
                                 'reason', p_reason, 'owner', held_by, 'queue_id', queued)));
    RETURN queued;
END
$$;

CREATE OR REPLACE FUNCTION claimcheck.schedule_delete(p_key text, p_reason text)
RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT claimcheck.schedule_delete_as(claimcheck.sql_actor(), NULL, p_key, p_reason)
$$;

-- Only the service's role (the owner) and roles granted them may call the
-- actor-taking functions: a business role given `consume_claims` must not
-- write audit rows in someone else's name.
REVOKE ALL ON FUNCTION claimcheck.audit(jsonb, text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION claimcheck.consume_claims_as(jsonb, text[], text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION claimcheck.schedule_delete_as(jsonb, text[], text, text) FROM PUBLIC;
