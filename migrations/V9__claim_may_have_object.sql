-- Whether anything may have written a claim's object (issue 18).
--
-- The sweeper asks the store (HEAD) about each expired pending claim, to
-- recover one whose object was completed by a process that died before it
-- marked the claim. A multipart claim's object can only be assembled by a
-- complete (or a tus PATCH that completes), and both take the claim's
-- writer lock first (`writer_token`, a conditional UPDATE of the row; so
-- does the complete of a 0-byte chunked upload, which puts an empty
-- object). The other two writers of an object are known when the claim is
-- inserted: a single-shot body (no part layout: `part_size` is null) and a
-- tus concatenation's final upload, assembled right after its insert
-- without the lock. A chunked claim is inserted before its session is
-- opened; recording that session (`upload_id` from null to a value) writes
-- no object, so it does not count; replacing one session by another does.
-- So the column is true once any of those may have written the object,
-- false for a chunked claim nothing has touched, and the sweeper asks the
-- store only when it is not false.
--
-- A trigger keeps it, not the statements: API pods of the release before
-- this one take writer locks without knowing the column, and a claim they
-- lock must never be taken for untouched. Claims inserted before this
-- migration stay NULL (unknown), which the sweeper treats as true. Once
-- true (or unknown) it never goes back.
ALTER TABLE claimcheck.upload_claims ADD COLUMN may_have_object boolean;

CREATE FUNCTION claimcheck.claim_may_have_object() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.may_have_object := NEW.part_size IS NULL
                               OR NEW.concat IS NOT DISTINCT FROM 'final';
    ELSIF OLD.may_have_object IS NULL THEN
        NEW.may_have_object := NULL;
    ELSE
        -- A writer lock taken (or a session swapped): from now on the
        -- object may exist.
        NEW.may_have_object := OLD.may_have_object
                               OR NEW.writer_token IS NOT NULL
                               OR (OLD.upload_id IS NOT NULL
                                   AND NEW.upload_id IS DISTINCT FROM OLD.upload_id);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER upload_claims_may_have_object_insert
    BEFORE INSERT ON claimcheck.upload_claims
    FOR EACH ROW EXECUTE FUNCTION claimcheck.claim_may_have_object();

-- Any UPDATE naming these columns: the lock (writer_token), and a write of
-- the column itself, which cannot clear it.
CREATE TRIGGER upload_claims_may_have_object_update
    BEFORE UPDATE OF writer_token, may_have_object, upload_id ON claimcheck.upload_claims
    FOR EACH ROW EXECUTE FUNCTION claimcheck.claim_may_have_object();
