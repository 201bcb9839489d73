-- pgbench script: the webhook deliverer's two statements per batch, with
-- nothing in between (no HTTP request): the raw SQL ceiling of deliveries.
--
--   pgbench -n -M prepared -f bench/webhook_lease_done.sql -c CLIENTS -j CLIENTS -t BATCHES "$URL"
--
-- 1. the lease of shared/src/db/webhooks.rs (WebhookStore::lease), verbatim
--    but for its rows being aggregated into an id array server-side
--    (pgbench keeps one row: \gset); the worker also joins the event and the
--    endpoint to send them;
-- 2. the done UPDATE (WebhookStore::done) for the whole batch in one
--    statement (the worker writes one per delivery).
-- Batch, per-endpoint share, lease and attempts are the worker's defaults.
\set batch 100
\set per_endpoint 100
\set lease_secs 40
\set max_attempts 12
\set tok random(1, 9000000000000000000)
WITH due AS (
    SELECT d.id, d.attempts FROM claimcheck.webhook_endpoints w
     CROSS JOIN LATERAL (
           SELECT id, attempts FROM claimcheck.webhook_deliveries
            WHERE endpoint_id = w.id AND done_at IS NULL AND dead_at IS NULL
              AND next_attempt_at <= now()
            ORDER BY next_attempt_at
            LIMIT :per_endpoint
              FOR UPDATE SKIP LOCKED) d
     LIMIT :batch
), leased AS (
    UPDATE claimcheck.webhook_deliveries p
       SET attempts = p.attempts + 1,
           leased_until = now() + make_interval(secs => :lease_secs),
           next_attempt_at = now() + make_interval(secs => :lease_secs),
           lease_token = md5(:tok::text)::uuid
      FROM due WHERE p.id = due.id AND due.attempts < :max_attempts
    RETURNING p.id
)
SELECT coalesce(array_agg(id), '{}') AS ids FROM leased
\gset
UPDATE claimcheck.webhook_deliveries
   SET done_at = now(), leased_until = NULL, lease_token = NULL, last_status = 204
 WHERE id = ANY(:ids::bigint[]) AND lease_token = md5(:tok::text)::uuid;
