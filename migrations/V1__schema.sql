-- claimcheck's schema. Every object lives in the `claimcheck` schema so the
-- service can share a database with the business code that adopts its uploads.
--
-- Every TTL and lease decision compares with the database clock (now()), never
-- a pod's clock: pods with skewed clocks then agree.

CREATE SCHEMA IF NOT EXISTS claimcheck;

-- An upload in flight (pending) or finished but not yet adopted (uploaded).
CREATE TABLE claimcheck.upload_claims (
    id           uuid        PRIMARY KEY,              -- uuid v7: time-ordered
    object_key   text        NOT NULL UNIQUE,
    upload_id    text,                                 -- the store's multipart session
    owner        text        NOT NULL,
    filename     text        NOT NULL,
    content_type text        NOT NULL,
    size         bigint      NOT NULL CHECK (size >= 0),
    public       boolean     NOT NULL DEFAULT false,
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'uploaded')),
    sha256       text,
    part_size    bigint      CHECK (part_size > 0),
    part_count   integer     CHECK (part_count BETWEEN 1 AND 10000),
    -- Set at the first presigned part: complete then reads parts back from
    -- the store (ListParts) for part numbers the API did not receive itself.
    direct_parts boolean     NOT NULL DEFAULT false,
    -- A client's Idempotency-Key: a retry of the same request by the same
    -- owner finds this claim instead of starting another upload.
    idempotency_key text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- When the sweeper may take the claim. Null only for an uploaded claim
    -- kept forever (unconsumed TTL 0).
    expires_at   timestamptz,
    uploaded_at  timestamptz,
    CHECK (status = 'uploaded' OR expires_at IS NOT NULL),
    CHECK ((status = 'uploaded') = (uploaded_at IS NOT NULL)),
    CHECK ((part_size IS NULL) = (part_count IS NULL))
);

-- The sweeper: WHERE status = $1 AND expires_at <= now() ORDER BY expires_at.
CREATE INDEX upload_claims_sweep_idx ON claimcheck.upload_claims (status, expires_at);
-- The per-owner in-flight cap and an owner's listing (newest first).
CREATE INDEX upload_claims_owner_idx ON claimcheck.upload_claims (owner, status, id DESC);

CREATE UNIQUE INDEX upload_claims_idempotency_idx
    ON claimcheck.upload_claims (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Parts received for a chunked upload; they go with their claim.
CREATE TABLE claimcheck.upload_parts (
    claim_id    uuid        NOT NULL REFERENCES claimcheck.upload_claims (id) ON DELETE CASCADE,
    part_number integer     NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    size        bigint      NOT NULL CHECK (size >= 0),
    sha256      text,                                  -- null for parts sent straight to S3
    etag        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (claim_id, part_number)
);

-- Live objects adopted by business code.
CREATE TABLE claimcheck.objects (
    object_key   text        PRIMARY KEY,
    owner        text        NOT NULL,
    size         bigint      NOT NULL,
    content_type text        NOT NULL,
    filename     text        NOT NULL,
    sha256       text,
    public       boolean     NOT NULL,
    created_at   timestamptz NOT NULL,                 -- when the upload started
    consumed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX objects_owner_idx ON claimcheck.objects (owner, consumed_at);

-- The durable delete queue. A row is, at any moment, exactly one of:
--   dead      dead_at IS NOT NULL
--   leased    leased_until > now()
--   due       next_attempt_at <= now() (and neither of the above)
--   deferred  next_attempt_at > now() (waiting after a failure)
-- A lease pushes next_attempt_at to the end of the lease as well, so the due
-- test is a single range condition and a crashed worker's rows come back by
-- themselves when the lease runs out.
CREATE TABLE claimcheck.pending_deletes (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object_key      text        NOT NULL,
    upload_id       text,                              -- abort this session first
    reason          text        NOT NULL CHECK (reason IN
                        ('replaced', 'deleted', 'discarded', 'claim_expired', 'unconsumed')),
    attempts        integer     NOT NULL DEFAULT 0,    -- counts leases
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_until    timestamptz,
    lease_token     uuid,                              -- fences Done/Defer to the holder
    last_error      text,
    dead_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- The lease: WHERE dead_at IS NULL AND next_attempt_at <= now() ORDER BY next_attempt_at.
CREATE INDEX pending_deletes_due_idx ON claimcheck.pending_deletes (next_attempt_at)
    WHERE dead_at IS NULL;
CREATE INDEX pending_deletes_dead_idx ON claimcheck.pending_deletes (dead_at)
    WHERE dead_at IS NOT NULL;
-- The audit and the reaper look keys and sessions up.
CREATE INDEX pending_deletes_key_idx ON claimcheck.pending_deletes (object_key);
CREATE INDEX pending_deletes_upload_idx ON claimcheck.pending_deletes (upload_id)
    WHERE upload_id IS NOT NULL;
CREATE INDEX upload_claims_upload_idx ON claimcheck.upload_claims (upload_id)
    WHERE upload_id IS NOT NULL;

-- Workers LISTEN on this channel, so a new row is picked up at once rather
-- than at the next poll.
CREATE FUNCTION claimcheck.notify_pending_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('claimcheck_pending_deletes', '');
    RETURN NULL;
END $$;

CREATE TRIGGER pending_deletes_notify
    AFTER INSERT ON claimcheck.pending_deletes
    FOR EACH STATEMENT EXECUTE FUNCTION claimcheck.notify_pending_delete();

-- API tokens: only the SHA-256 of the raw token is stored.
CREATE TABLE claimcheck.api_tokens (
    id           uuid        PRIMARY KEY,
    token_sha256 bytea       NOT NULL UNIQUE,
    owner        text        NOT NULL,
    scopes       text[]      NOT NULL CHECK (scopes <@ ARRAY['upload', 'consume', 'admin']),
    name         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
