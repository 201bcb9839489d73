-- Hardening after the security review (issue 11).

-- Settings the SQL functions need and only the service's configuration knows.
-- `key_prefix` is CLAIMCHECK_KEY_PREFIX: the API and the worker record theirs
-- at start (and refuse to start when the database holds another one), so
-- `schedule_delete` can refuse keys outside the service's key space. Null
-- until a process recorded it: then the prefix is the default, empty.
CREATE TABLE claimcheck.settings (
    name  text PRIMARY KEY,
    value text
);
INSERT INTO claimcheck.settings (name, value) VALUES ('key_prefix', NULL);

ALTER TABLE claimcheck.upload_claims
    -- What the request that carried the Idempotency-Key asked for (kind,
    -- size, filename, content type, visibility, part size): a retry must ask
    -- for the same, or it is another request reusing a key (409).
    ADD COLUMN idempotency_fingerprint text,
    -- One writer at a time per claim across all pods (a complete, later a
    -- tus PATCH): a lease like the delete queue's, never a transaction held
    -- across object-store I/O. Free when writer_until is null or past.
    ADD COLUMN writer_token uuid,
    ADD COLUMN writer_until timestamptz;

-- A part the API refused (its bytes did not match the client's SHA-256) is
-- still in the store's session: S3 cannot drop one part. Its row is kept,
-- marked refused with the stored ETag, so complete never assembles those
-- bytes, even when it reads the session back (ListParts) for presigned parts.
ALTER TABLE claimcheck.upload_parts
    ADD COLUMN refused boolean NOT NULL DEFAULT false;

-- Whether `key` is in the service's key space: the recorded prefix, then
-- `pub/` or `priv/`.
CREATE FUNCTION claimcheck.in_key_space(p_key text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_key IS NOT NULL
       AND (starts_with(p_key, coalesce(s.value, '') || 'pub/')
            OR starts_with(p_key, coalesce(s.value, '') || 'priv/'))
      FROM claimcheck.settings s WHERE s.name = 'key_prefix'
$$;

-- schedule_delete, now refusing keys outside the key space (22023) and keys
-- that are still upload claims (55000, object_not_in_prerequisite_state):
-- deleting a claim's object would leave a claim, later a registry row,
-- without its object. Either way nothing is queued.
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
    DELETE FROM claimcheck.objects WHERE object_key = p_key;
    INSERT INTO claimcheck.pending_deletes (object_key, reason)
    VALUES (p_key, p_reason)
    RETURNING id INTO queued;
    RETURN queued;
END
$$;
REVOKE ALL ON FUNCTION claimcheck.schedule_delete(text, text) FROM PUBLIC;

-- The audit merges the bucket's listing (bytewise key order) with these
-- tables range by range; bytewise-collated indexes serve those ranges
-- whatever the database's collation.
CREATE INDEX objects_key_bytewise_idx
    ON claimcheck.objects (object_key COLLATE "C");
CREATE INDEX upload_claims_uploaded_key_bytewise_idx
    ON claimcheck.upload_claims (object_key COLLATE "C") WHERE status = 'uploaded';
