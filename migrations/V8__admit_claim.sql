-- Admitting a start in the statement that creates its claim (issue 18).
--
-- Before, a start was a transaction of five round trips: BEGIN, the owner's
-- advisory lock, the read of its usage, the insert, COMMIT; the lock was
-- held while three of them went back and forth between the API and the
-- database, so one owner's starts queued behind the network. Now the API
-- sends one statement whose first CTE calls claimcheck.admit_claim(): it
-- takes the lock, reads the usage with a snapshot taken after the lock (a
-- volatile function's statements each take their own, in READ COMMITTED),
-- and says whether the start fits; the statement's insert runs only when it
-- does, and the lock is released when the statement's transaction commits,
-- inside the same round trip.

-- Each owner's pending claims, kept by triggers on upload_claims, so a start
-- reads one row instead of counting the owner's pending claims (which, for an
-- owner allowed many in flight, read thousands of rows while the owner's
-- lock was held). Multi-row statements (the sweeper's expiry, an INSERT ...
-- SELECT) add up their changes per owner and apply them in owner order, so
-- two of them never wait on each other's counters in a cycle.
CREATE TABLE claimcheck.owner_pending (
    owner   text   PRIMARY KEY,
    pending bigint NOT NULL
);

-- Inserted rows count up, deleted ones down; both triggers name their
-- transition table `changed`.
CREATE FUNCTION claimcheck.pending_counted() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sign bigint := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
    r record;
BEGIN
    FOR r IN SELECT c.owner, count(*) AS n FROM changed c
              WHERE c.status = 'pending' GROUP BY c.owner ORDER BY c.owner
    LOOP
        INSERT INTO claimcheck.owner_pending AS p (owner, pending) VALUES (r.owner, sign * r.n)
        ON CONFLICT (owner) DO UPDATE SET pending = p.pending + EXCLUDED.pending;
    END LOOP;
    RETURN NULL;
END
$$;

-- A status change is one claim at a time (complete, the sweeper's
-- recovery), so it is counted per row; a claim never changes owner.
CREATE FUNCTION claimcheck.pending_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE claimcheck.owner_pending p
       SET pending = p.pending + (NEW.status = 'pending')::int - (OLD.status = 'pending')::int
     WHERE p.owner = NEW.owner;
    RETURN NULL;
END
$$;

CREATE FUNCTION claimcheck.pending_truncated() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM claimcheck.owner_pending;
    RETURN NULL;
END
$$;

-- The count so far; the triggers below keep it (the lock is held until this
-- migration commits, so no change slips in between).
LOCK TABLE claimcheck.upload_claims IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO claimcheck.owner_pending (owner, pending)
SELECT owner, count(*) FROM claimcheck.upload_claims WHERE status = 'pending' GROUP BY owner;

CREATE TRIGGER upload_claims_pending_inserted
    AFTER INSERT ON claimcheck.upload_claims REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION claimcheck.pending_counted();
CREATE TRIGGER upload_claims_pending_deleted
    AFTER DELETE ON claimcheck.upload_claims REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION claimcheck.pending_counted();
CREATE TRIGGER upload_claims_pending_changed
    AFTER UPDATE OF status ON claimcheck.upload_claims
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION claimcheck.pending_changed();
CREATE TRIGGER upload_claims_pending_truncated
    AFTER TRUNCATE ON claimcheck.upload_claims
    FOR EACH STATEMENT EXECUTE FUNCTION claimcheck.pending_truncated();

-- An owner's overrides and usage: `p_releases`: claims not counted as held
-- (a final upload's partials); `p_default_bytes`: the configured byte
-- quota; `p_always_sum`: sum the held bytes even when no byte quota applies
-- (the sum reads every row of the owner's, so a start pays for it only when
-- a byte quota needs it). PL/pgSQL, so its plan is cached per session.
CREATE FUNCTION claimcheck.owner_usage(
    p_owner text, p_releases uuid[], p_default_bytes bigint, p_always_sum boolean)
RETURNS TABLE (bytes bigint, daily_bytes bigint, daily_uploads bigint, pending bigint,
               held bigint, daily_uploads_used bigint, daily_bytes_used bigint, day date)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    WITH o AS (
        SELECT q.bytes, q.daily_bytes, q.daily_uploads
          FROM (SELECT 1) one LEFT JOIN claimcheck.owner_quotas q ON q.owner = p_owner
    )
    SELECT o.bytes, o.daily_bytes, o.daily_uploads,
           coalesce((SELECT p.pending FROM claimcheck.owner_pending p WHERE p.owner = p_owner), 0),
           CASE WHEN p_always_sum OR coalesce(o.bytes, p_default_bytes) > 0 THEN
               (SELECT coalesce(sum(c.size), 0) FROM claimcheck.upload_claims c
                 WHERE c.owner = p_owner AND c.id <> ALL (p_releases))::bigint
             + (SELECT coalesce(sum(b.size), 0) FROM claimcheck.objects b WHERE b.owner = p_owner)::bigint
           END,
           coalesce(d.uploads, 0)::bigint, coalesce(d.bytes, 0)::bigint,
           (now() AT TIME ZONE 'UTC')::date
      FROM o LEFT JOIN claimcheck.owner_daily_usage d
        ON d.owner = p_owner AND d.day = (now() AT TIME ZONE 'UTC')::date;
END
$$;

-- Takes the owner's lock for the rest of the caller's transaction and
-- judges a start. One row: `verdict` is
--   'existing'   the owner made a claim with this idempotency key in the last
--                24 hours (`existing_id`, `existing_fingerprint`): no new one;
--   'refused'    the in-flight cap ('pending') or a quota would be exceeded
--                (`quota`, `quota_limit`, `quota_usage`, `quota_requested`);
--   'admitted'   the caller inserts the claim in the same transaction.
-- Quotas are checked in this order: pending, bytes, daily uploads, daily
-- bytes; 0 is no limit; a charge of 0 is never refused. The limits are the
-- owner's overrides over the configured defaults (`p_default_*`).
CREATE FUNCTION claimcheck.admit_claim(
    p_owner text, p_idempotency_key text, p_max_pending bigint, p_releases uuid[],
    p_held bigint, p_uploads bigint, p_bytes bigint,
    p_default_bytes bigint, p_default_daily_bytes bigint, p_default_daily_uploads bigint)
RETURNS TABLE (verdict text, existing_id uuid, existing_fingerprint text, quota text,
               quota_limit bigint, quota_usage bigint, quota_requested bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    u record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('claimcheck.owner:' || p_owner, 0));
    IF p_idempotency_key IS NOT NULL THEN
        SELECT c.id, c.idempotency_fingerprint INTO existing_id, existing_fingerprint
          FROM claimcheck.upload_claims c
         WHERE c.owner = p_owner AND c.idempotency_key = p_idempotency_key
           AND c.created_at > now() - interval '24 hours';
        IF FOUND THEN
            verdict := 'existing';
            RETURN NEXT;
            RETURN;
        END IF;
        -- An older claim holding the key is no answer any more: the key is
        -- freed for this start (the unique index would refuse it).
        UPDATE claimcheck.upload_claims c SET idempotency_key = NULL
         WHERE c.owner = p_owner AND c.idempotency_key = p_idempotency_key;
    END IF;
    SELECT * INTO u FROM claimcheck.owner_usage(p_owner, p_releases, p_default_bytes, false);
    verdict := 'refused';
    IF u.pending >= p_max_pending THEN
        quota := 'pending'; quota_limit := p_max_pending;
        quota_usage := u.pending; quota_requested := 1;
        RETURN NEXT;
        RETURN;
    END IF;
    -- The first quota the start would take past its limit (0: no limit; a
    -- charge of 0 is never refused), in this order.
    SELECT q.name, q.lim, q.used, q.more
      INTO quota, quota_limit, quota_usage, quota_requested
      FROM (VALUES (1, 'bytes', coalesce(u.bytes, p_default_bytes), u.held, p_held),
                   (2, 'daily_uploads', coalesce(u.daily_uploads, p_default_daily_uploads),
                       u.daily_uploads_used, p_uploads),
                   (3, 'daily_bytes', coalesce(u.daily_bytes, p_default_daily_bytes),
                       u.daily_bytes_used, p_bytes)) q (ord, name, lim, used, more)
     WHERE q.lim > 0 AND q.more > 0 AND q.used + q.more > q.lim
     ORDER BY q.ord LIMIT 1;
    IF FOUND THEN
        RETURN NEXT;
        RETURN;
    END IF;
    verdict := 'admitted';
    RETURN NEXT;
END
$$;

REVOKE ALL ON FUNCTION claimcheck.admit_claim(text, text, bigint, uuid[], bigint, bigint, bigint,
                                              bigint, bigint, bigint) FROM PUBLIC;
