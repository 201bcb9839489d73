//! Whether the job loops are making progress, for the worker's readiness.
//!
//! A loop wedged on a call that never returns (a black-holed S3, a
//! half-open connection) looks alive to `/healthz` and keeps its rows
//! leased. Each loop stamps the time it last completed a step; readiness
//! fails when a stamp is older than the loop's deadline.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// The loops watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    /// [`super::delete_worker::run`].
    Deletes,
    /// [`super::sweeper::run`].
    Sweeper,
}

impl Loop {
    /// Its name in readiness answers.
    pub fn name(self) -> &'static str {
        match self {
            Loop::Deletes => "deletes",
            Loop::Sweeper => "sweeper",
        }
    }
}

/// When each loop last completed a step, in milliseconds since `start`.
#[derive(Debug, Clone)]
pub struct Liveness {
    start: Instant,
    stamps: Arc<[AtomicU64; 2]>,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            stamps: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
        }
    }
}

impl Liveness {
    /// Records that `which` completed a step now.
    pub fn beat(&self, which: Loop) {
        let now = self.start.elapsed().as_millis() as u64;
        self.stamps[which as usize].store(now, Ordering::Relaxed);
    }

    /// How long ago `which` last completed a step (since start, if never).
    pub fn since(&self, which: Loop) -> Duration {
        let stamp = Duration::from_millis(self.stamps[which as usize].load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(stamp)
    }

    /// The loops whose last step is older than `deadline`.
    pub fn stalled(&self, deadline: Duration) -> Vec<Loop> {
        [Loop::Deletes, Loop::Sweeper]
            .into_iter()
            .filter(|l| self.since(*l) > deadline)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_is_stalled_once_its_last_beat_is_older_than_the_deadline() {
        let live = Liveness::default();
        std::thread::sleep(Duration::from_millis(30));
        live.beat(Loop::Deletes);
        assert_eq!(live.stalled(Duration::from_millis(20)), [Loop::Sweeper]);
        assert!(live.stalled(Duration::from_secs(5)).is_empty());
    }
}
