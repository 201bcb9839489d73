-- pgbench script: the delete worker's two statements per batch, with nothing
-- in between (no object-store call), bare: the raw SQL ceiling of a drain.
--
--   pgbench -n -M prepared -f bench/lease_done.sql -c CLIENTS -j CLIENTS -t BATCHES "$URL"
--
-- 1. the lease of shared/src/db/deletes/lease.rs (LEASE) without its `live`
--    column (the live-key check), its RETURNING rows aggregated into an id
--    array server-side (pgbench can only keep one row: \gset);
-- 2. the done DELETE (DONE) without the `object.deleted` events the worker
--    writes with it by contract, fenced by the same lease token.
-- bench/lease_done_events.sql is the same with both: the statements as the
-- worker runs them. bench/run measures both ceilings.
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
), leased AS (
    UPDATE claimcheck.pending_deletes p
       SET attempts = p.attempts + 1,
           leased_until = now() + make_interval(secs => :lease_secs),
           next_attempt_at = now() + make_interval(secs => :lease_secs),
           lease_token = md5(:tok::text)::uuid
      FROM due WHERE p.id = due.id AND due.attempts < :max_attempts
 RETURNING p.id, p.object_key, p.upload_id, p.reason, p.attempts, p.last_error, p.created_at
)
SELECT coalesce(array_agg(id), '{}') AS ids FROM leased
\gset
DELETE FROM claimcheck.pending_deletes WHERE id = ANY(:ids::bigint[]) AND lease_token = md5(:tok::text)::uuid;
