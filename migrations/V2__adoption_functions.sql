-- The SQL API for business code on the same database. Both functions run inside
-- the caller's transaction: a rollback undoes them with the business's own
-- writes. They are SECURITY DEFINER with a fixed search_path, so a business
-- role needs only:
--   GRANT USAGE ON SCHEMA claimcheck TO app;
--   GRANT EXECUTE ON FUNCTION claimcheck.consume_claims(text, text[]),
--                             claimcheck.schedule_delete(text, text) TO app;

-- Moves the owner's uploaded claims for `keys` into the objects registry and
-- returns the registry rows. All or nothing: if any key is unknown, pending or
-- another owner's, raises P0002 (no_data_found) naming the missing keys (the
-- DETAIL is JSON: {"missing": [...]}) and consumes nothing.
CREATE FUNCTION claimcheck.consume_claims(p_owner text, p_keys text[])
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
             ORDER BY c.object_key
               FOR UPDATE) AS locked;

    IF cardinality(found) <> cardinality(wanted) THEN
        SELECT array_agg(k ORDER BY k) INTO missing
          FROM unnest(wanted) AS k
         WHERE NOT (k = ANY (found));
        RAISE EXCEPTION 'claims not found, pending or owned by someone else: %',
                        array_to_string(missing, ', ')
              USING ERRCODE = 'P0002',
                    DETAIL = json_build_object('missing', missing)::text;
    END IF;

    RETURN QUERY
    WITH moved AS (
        DELETE FROM claimcheck.upload_claims c
         WHERE c.object_key = ANY (found)
        RETURNING c.*
    )
    INSERT INTO claimcheck.objects
           (object_key, owner, size, content_type, filename, sha256, public, created_at)
    SELECT m.object_key, m.owner, m.size, m.content_type, m.filename, m.sha256, m.public, m.created_at
      FROM moved m
    RETURNING *;
END
$$;

-- Removes the registry row of `key`, if there is one, and queues the object's
-- delete, in the caller's transaction. Returns the queue row's id. Business
-- reasons only: 'replaced' or 'deleted'.
CREATE FUNCTION claimcheck.schedule_delete(p_key text, p_reason text)
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
    DELETE FROM claimcheck.objects WHERE object_key = p_key;
    INSERT INTO claimcheck.pending_deletes (object_key, reason)
    VALUES (p_key, p_reason)
    RETURNING id INTO queued;
    RETURN queued;
END
$$;

REVOKE ALL ON FUNCTION claimcheck.consume_claims(text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION claimcheck.schedule_delete(text, text) FROM PUBLIC;
