-- pgbench script: the delete worker's two statements per batch as it runs
-- them, with nothing in between (no object-store call): the SQL ceiling of
-- a drain that keeps the contract's events.
--
--   pgbench -n -M prepared -f bench/lease_done_events.sql -c CLIENTS -j CLIENTS -t BATCHES "$URL"
--
-- bench/lease_done.sql is the older ceiling: the lease and a bare done
-- DELETE. The worker's statements do more, by contract: the lease also says
-- which keys are live (a delete never removes a live object), and the done
-- statement writes each row's `object.deleted` event in the same statement
-- (the outbox). Both ceilings are measured, side by side.
--
-- 1. the lease of shared/src/db/deletes/lease.rs (LEASE), verbatim but for
--    its RETURNING rows being aggregated into an id array server-side
--    (pgbench can only keep one row: \gset);
-- 2. the done statement (DONE), with its events, fenced by the same token.
-- The token is a uuid made from a random number (the worker makes a v4 uuid).
-- Batch size, lease and max attempts are the worker's defaults
-- (CLAIMCHECK_DELETE_BATCH, _LEASE, _MAX_ATTEMPTS).
\set batch 100
\set lease_secs 300
\set max_attempts 12
\set tok random(1, 9000000000000000000)
WITH due AS (
    SELECT id, attempts FROM claimcheck.pending_deletes
     WHERE dead_at IS NULL AND next_attempt_at <= now()
     ORDER BY next_attempt_at
     LIMIT :batch
       FOR UPDATE SKIP LOCKED
), parked AS (
    UPDATE claimcheck.pending_deletes p
       SET dead_at = now(), leased_until = NULL, lease_token = NULL,
           last_error = concat_ws(E'\n', p.last_error,
               'leased ' || p.attempts || ' times without an outcome (worker crashed or timed out)')
      FROM due WHERE p.id = due.id AND due.attempts >= :max_attempts
    RETURNING p.object_key, p.reason, p.last_error
), announced AS (
    INSERT INTO claimcheck.events (type, owner, data)
    SELECT 'object.delete_dead', NULL, jsonb_strip_nulls(jsonb_build_object(
               'key', r.object_key, 'reason', r.reason, 'last_error', r.last_error))
      FROM parked r
), leased AS (
    UPDATE claimcheck.pending_deletes p
       SET attempts = p.attempts + 1,
           leased_until = now() + make_interval(secs => :lease_secs),
           next_attempt_at = now() + make_interval(secs => :lease_secs),
           lease_token = md5(:tok::text)::uuid
      FROM due WHERE p.id = due.id AND due.attempts < :max_attempts
 RETURNING p.id, p.object_key, p.upload_id, p.reason, p.attempts, p.last_error, p.created_at,
           CASE WHEN EXISTS (SELECT 1 FROM claimcheck.objects o
                              WHERE o.object_key = p.object_key)
                THEN 'a registry row'
                WHEN EXISTS (SELECT 1 FROM claimcheck.upload_claims c
                              WHERE c.object_key = p.object_key AND c.status = 'uploaded')
                THEN 'an uploaded claim'
           END AS live
)
SELECT coalesce(array_agg(id), '{}') AS ids FROM leased
\gset
WITH gone AS (
    DELETE FROM claimcheck.pending_deletes
     WHERE id = ANY(:ids::bigint[]) AND lease_token = md5(:tok::text)::uuid
    RETURNING id, object_key, reason, NULL::text AS last_error
), announced AS (
    INSERT INTO claimcheck.events (type, owner, data)
    SELECT 'object.deleted', NULL, jsonb_strip_nulls(jsonb_build_object(
               'key', r.object_key, 'reason', r.reason, 'last_error', r.last_error))
      FROM gone r
)
SELECT id FROM gone;
