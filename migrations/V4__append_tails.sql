-- Appends at an offset (tus PATCH, issue 12): bytes short of a store part.
--
-- A protocol that appends receives chunks of any size, but S3 assembles only
-- parts of at least 5 MiB (but the last). The server cuts full parts itself
-- (upload_parts) and keeps the bytes after the last full part here, so a chunk
-- of any size is durable when it is acknowledged. Each append adds one
-- segment (never rewrites the earlier ones: 1-byte chunks stay linear); the
-- segments are dropped in the transaction that records the part they became.
-- A claim's offset is its contiguous parts' bytes plus its segments' bytes.
CREATE TABLE claimcheck.upload_tails (
    claim_id     uuid        NOT NULL REFERENCES claimcheck.upload_claims (id) ON DELETE CASCADE,
    -- Where the segment starts in the object.
    start_offset bigint      NOT NULL CHECK (start_offset >= 0),
    bytes        bytea       NOT NULL CHECK (octet_length(bytes) > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (claim_id, start_offset)
);
-- Uploads are mostly compressed already: storing the bytes out of line
-- without trying to compress them saves the CPU and loses nothing.
ALTER TABLE claimcheck.upload_tails ALTER COLUMN bytes SET STORAGE EXTERNAL;
