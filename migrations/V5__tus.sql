-- Resumable uploads over tus 1.0 (issue 13): a tus upload is an upload claim.

ALTER TABLE claimcheck.upload_claims
    -- Which front-end started the upload: its parts come from that one only
    -- (REST parts by number, tus appends at an offset), never both.
    ADD COLUMN protocol text NOT NULL DEFAULT 'rest' CHECK (protocol IN ('rest', 'tus')),
    -- Upload-Defer-Length: the size is not known yet. Until it is, `size`
    -- holds the service's size limit (an upper bound) and the upload cannot
    -- finish.
    ADD COLUMN length_deferred boolean NOT NULL DEFAULT false,
    -- Upload-Metadata as the client sent it (HEAD gives it back).
    ADD COLUMN tus_metadata text,
    -- tus concatenation: a partial upload (never consumed on its own) or the
    -- final upload assembled from partials.
    ADD COLUMN concat text CHECK (concat IN ('partial', 'final')),
    ADD CONSTRAINT upload_claims_tus_columns CHECK (
        protocol = 'tus' OR (NOT length_deferred AND tus_metadata IS NULL AND concat IS NULL));

-- consume_claims as in V2, but a partial upload is never consumed on its own:
-- it exists to be concatenated, and counts as missing here.
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
    )
    INSERT INTO claimcheck.objects
           (object_key, owner, size, content_type, filename, sha256, public, created_at)
    SELECT m.object_key, m.owner, m.size, m.content_type, m.filename, m.sha256, m.public, m.created_at
      FROM moved m
    RETURNING *;
END
$$;
