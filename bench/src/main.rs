//! `claimcheck-bench`: the load client `bench/run` drives. Each subcommand runs
//! one benchmark (or prepares one) and prints Markdown table rows or plain
//! `name=value` lines for the script to put in BENCHMARKS.md.
//!
//! One client for both sides of each comparison, so a ratio compares the
//! server paths and not two clients: the same reqwest client sends the bytes
//! to the API and, with presigned URLs, straight to the S3 server.

mod client;
mod fill;
mod init_rate;
mod rate;
mod raw;
mod tail;
mod throughput;
mod tus_create;
mod tus_head;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::{
    fill::{fs_files, s3_fill},
    init_rate::init_rate,
    throughput::{memory, throughput},
};

const MIB: u64 = 1 << 20;

#[derive(Parser)]
#[command(name = "claimcheck-bench", about = "Load client for bench/run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Single-shot and multipart uploads through the API against the same
    /// client PUTting straight to S3 (presigned URLs), alternated.
    Throughput(ThroughputArgs),
    /// Concurrent single-shot uploads through the API while sampling the API
    /// process's resident memory.
    Memory(MemoryArgs),
    /// `POST /v1/uploads/multipart` at a fixed concurrency: rate and latency.
    InitRate(InitRateArgs),
    /// Where an append keeps bytes short of a part: PostgreSQL rows against
    /// store objects, N appends then the cut. Prints a Markdown table.
    Tail(TailArgs),
    /// `HEAD` of one tus upload (made first: created, then part of it sent
    /// in one `PATCH`) at a fixed concurrency: rate and latency.
    TusHead(TusHeadArgs),
    /// tus creation (`POST`, `Upload-Length`, no body) at a fixed
    /// concurrency against any tus server: rate and latency.
    TusCreate(TusCreateArgs),
    /// Creates multipart sessions straight through the S3 API; writes
    /// `key<TAB>upload_id` lines.
    S3Sessions(S3FillArgs),
    /// Creates small objects straight through the S3 API; writes their keys.
    S3Objects(S3FillArgs),
    /// Creates small files under a filesystem store root; writes their keys.
    FsFiles(FsFilesArgs),
    /// The S3 drain's limit: deletes the keys of a file straight with
    /// `DeleteObjects` (1,000 keys a request).
    S3Delete(RawArgs),
    /// The sweeper's limit: `HeadObject` + `AbortMultipartUpload` for each
    /// session of a file (`key<TAB>upload_id`).
    S3Abort(RawArgs),
    /// Benchmark 4's limit: multipart sessions created straight through the
    /// S3 API at a fixed concurrency: rate and latency.
    S3Create(S3CreateArgs),
}

#[derive(Args)]
struct S3CreateArgs {
    #[command(flatten)]
    s3: S3,
    /// Key prefix of the sessions (ends with `/`).
    #[arg(long)]
    prefix: String,
    #[command(flatten)]
    load: Load,
}

/// A closed-loop load: clients, measured seconds, warm-up.
#[derive(Args, Clone, Copy)]
struct Load {
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20)]
    secs: u64,
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
}

impl Load {
    fn window(self) -> rate::Window {
        rate::Window {
            concurrency: self.concurrency,
            warmup_secs: self.warmup_secs,
            secs: self.secs,
        }
    }
}

#[derive(Args)]
struct RawArgs {
    #[command(flatten)]
    s3: S3,
    /// The keys (or `key<TAB>upload_id` lines).
    #[arg(long)]
    input: String,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[derive(Args, Clone)]
struct Api {
    /// The API's base URL.
    #[arg(long)]
    api: String,
    /// A token with the `upload` scope.
    #[arg(long, env = "BENCH_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Args, Clone)]
struct S3 {
    #[arg(long, env = "CLAIMCHECK_TEST_S3_ENDPOINT")]
    s3_endpoint: String,
    #[arg(long, env = "CLAIMCHECK_TEST_S3_BUCKET")]
    s3_bucket: String,
    #[arg(long, env = "CLAIMCHECK_TEST_S3_REGION")]
    s3_region: String,
    #[arg(long, env = "CLAIMCHECK_TEST_S3_ACCESS_KEY", hide_env_values = true)]
    s3_access_key: String,
    #[arg(long, env = "CLAIMCHECK_TEST_S3_SECRET_KEY", hide_env_values = true)]
    s3_secret_key: String,
}

#[derive(Args)]
struct ThroughputArgs {
    #[command(flatten)]
    api: Api,
    #[command(flatten)]
    s3: S3,
    /// Object size in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    size: u64,
    /// Part size of the multipart uploads.
    #[arg(long, default_value_t = 16 << 20)]
    part_size: u64,
    /// Parts in flight.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Rounds (each round: API then direct, single-shot then multipart).
    #[arg(long, default_value_t = 2)]
    reps: usize,
}

#[derive(Args)]
struct MemoryArgs {
    #[command(flatten)]
    api: Api,
    /// The API process to watch.
    #[arg(long)]
    pid: u32,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    #[arg(long, default_value_t = 256 << 20)]
    size: u64,
}

#[derive(Args)]
struct InitRateArgs {
    #[command(flatten)]
    api: Api,
    #[command(flatten)]
    load: Load,
}

#[derive(Args)]
struct TusHeadArgs {
    /// The tus creation URL (claimcheck: `<api>/v1/tus`).
    #[arg(long)]
    endpoint: String,
    /// Send `Authorization: Bearer $BENCH_TOKEN`.
    #[arg(long)]
    auth: bool,
    /// `Upload-Length` of the upload.
    #[arg(long, default_value_t = 64 << 20)]
    length: u64,
    /// Bytes sent in its one `PATCH` before the `HEAD`s.
    #[arg(long, default_value_t = 20 << 20)]
    sent: u64,
    #[command(flatten)]
    load: Load,
}

#[derive(Args)]
struct TusCreateArgs {
    /// The tus creation URL (claimcheck: `<api>/v1/tus`).
    #[arg(long)]
    endpoint: String,
    /// Send `Authorization: Bearer $BENCH_TOKEN` (comma-separated tokens:
    /// one per client, in turn).
    #[arg(long)]
    auth: bool,
    /// `Upload-Length` of each upload created.
    #[arg(long, default_value_t = 1 << 20)]
    length: u64,
    #[command(flatten)]
    load: Load,
}

#[derive(Args)]
struct S3FillArgs {
    #[command(flatten)]
    s3: S3,
    #[arg(long)]
    count: u64,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Stop creating after this many seconds (the count made is reported).
    #[arg(long, default_value_t = 600)]
    max_secs: u64,
    /// Key prefix (ends with `/`).
    #[arg(long)]
    prefix: String,
    /// Where to write the keys.
    #[arg(long)]
    out: String,
}

#[derive(Args)]
struct TailArgs {
    #[command(flatten)]
    s3: S3,
    /// The service's database (migrated).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Key prefix of the store objects (ends with `/`).
    #[arg(long)]
    prefix: String,
}

#[derive(Args)]
struct FsFilesArgs {
    #[arg(long)]
    root: String,
    #[arg(long)]
    prefix: String,
    #[arg(long)]
    count: u64,
    #[arg(long)]
    out: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Throughput(a) => throughput(a).await,
        Command::Memory(a) => memory(a).await,
        Command::InitRate(a) => init_rate(a).await,
        Command::S3Sessions(a) => s3_fill(a, true).await,
        Command::S3Objects(a) => s3_fill(a, false).await,
        Command::FsFiles(a) => fs_files(a),
        Command::Tail(a) => tail::tail(a).await,
        Command::TusHead(a) => tus_head::tus_head(a).await,
        Command::TusCreate(a) => tus_create::tus_create(a).await,
        Command::S3Delete(a) => raw::s3_delete(a).await,
        Command::S3Abort(a) => raw::s3_abort(a).await,
        Command::S3Create(a) => raw::s3_create(a).await,
    }
}
