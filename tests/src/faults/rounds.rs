//! Rounds of concurrent uploads (half REST multipart, half tus) for the
//! fault scenarios: started together, awaited, summed up.

use std::time::{Duration, Instant};

use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::task::JoinHandle;

use super::{
    load::Caller,
    uploads::{upload, Finished, Protocol, Upload},
};

const MIB: u64 = 1024 * 1024;

/// An upload under way.
pub type Running = JoinHandle<Result<Finished, String>>;

/// Starts `count` uploads of 5-12 MiB through `api`, every other one tus,
/// each within the first `spread` (bodies, sizes and delays from `round`).
pub fn start_uploads(
    api: &Caller,
    round: u64,
    count: usize,
    spread: Duration,
    epoch: Instant,
) -> Vec<Running> {
    let mut rng = StdRng::seed_from_u64(round);
    (0..count as u64)
        .map(|i| {
            let up = Upload {
                protocol: if i % 2 == 0 {
                    Protocol::Multipart
                } else {
                    Protocol::Tus
                },
                seed: round * 1000 + i,
                size: 5 * MIB + rng.random_range(0..=7 * MIB),
            };
            let delay = spread.mul_f64(rng.random_range(0.0..1.0));
            let api = api.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                upload(&api, up, &format!("round{round}-{i}"), epoch).await
            })
        })
        .collect()
}

/// Waits for every upload of round `round`; each must have completed
/// (after retries), or the test fails saying why.
pub async fn finish(round: u64, running: Vec<Running>) -> Vec<Finished> {
    let mut finished = Vec::new();
    for (i, task) in running.into_iter().enumerate() {
        match task.await.expect("upload task") {
            Ok(f) => finished.push(f),
            Err(e) => panic!("round {round}: upload {i} failed: {e}"),
        }
    }
    finished
}

/// "N refusals (steps and statuses) from T1 to T2 in K uploads, slowest
/// answer S", for a round's report.
pub fn summary(finished: &[Finished]) -> String {
    let all: Vec<_> = finished.iter().flat_map(|f| &f.refusals).collect();
    let slowest = finished.iter().map(|f| f.slowest).max().unwrap_or_default();
    let hit = finished.iter().filter(|f| !f.refusals.is_empty()).count();
    let (Some(first), Some(last)) = (
        all.iter().map(|r| r.at).min(),
        all.iter().map(|r| r.at).max(),
    ) else {
        return format!("0 refusals, slowest answer {slowest:.1?}");
    };
    let mut kinds: Vec<String> = all
        .iter()
        .map(|r| format!("{} {}", r.step, r.status))
        .collect();
    kinds.sort();
    kinds.dedup();
    format!(
        "{} refusals ({}) from {first:.1?} to {last:.1?} in {hit} uploads, slowest answer {slowest:.1?}",
        all.len(),
        kinds.join(", ")
    )
}

/// How many refusals `finished` met at the start of an upload (`init`,
/// `create`): each may have left a multipart session the store opened
/// while the API could not record it.
pub fn refused_starts(finished: &[Finished]) -> usize {
    finished
        .iter()
        .flat_map(|f| &f.refusals)
        .filter(|r| matches!(r.step, "init" | "create"))
        .count()
}
