//! A closed-loop rate measurement: `concurrency` clients each send one
//! request after another for a warm-up, then for the measured seconds;
//! requests/s and latency percentiles of the ones that started and ended
//! inside the measured window. Benchmarks 4 and 7 and their limits share it,
//! so a ratio compares servers measured the same way.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use anyhow::Result;

/// How long to load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) concurrency: usize,
    pub(crate) warmup_secs: u64,
    pub(crate) secs: u64,
}

/// What the clients measured.
#[derive(Debug, Default)]
pub(crate) struct Rate {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    secs: u64,
}

/// Runs `request(client)` in a loop on `window.concurrency` clients; a
/// request answers `Err(why)` when it did not do what was asked.
pub(crate) async fn measure<F, Fut>(window: Window, request: F) -> Result<Rate>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let request = std::sync::Arc::new(request);
    let stop_warm = Instant::now() + Duration::from_secs(window.warmup_secs);
    let stop = stop_warm + Duration::from_secs(window.secs);
    let clients = (0..window.concurrency).map(|client| {
        let request = request.clone();
        tokio::spawn(async move {
            let mut rate = Rate::default();
            loop {
                let t = Instant::now();
                if t >= stop {
                    break;
                }
                let result = request(client).await;
                let end = Instant::now();
                if t < stop_warm || end > stop {
                    continue;
                }
                match result {
                    Ok(()) => rate.latencies.push(end - t),
                    Err(e) => {
                        rate.errors += 1;
                        rate.first_error.get_or_insert(e);
                    }
                }
            }
            rate
        })
    });
    let mut all = Rate {
        secs: window.secs,
        ..Rate::default()
    };
    for client in futures::future::join_all(clients).await {
        let rate = client?;
        all.latencies.extend(rate.latencies);
        all.errors += rate.errors;
        all.first_error = all.first_error.or(rate.first_error);
    }
    all.latencies.sort_unstable();
    Ok(all)
}

impl Rate {
    fn percentile_ms(&self, p: f64) -> f64 {
        let lat = &self.latencies;
        let i = ((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1));
        lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }

    /// Prints the `name=value` lines bench/run reads.
    pub(crate) fn print(&self) {
        println!("secs={}", self.secs);
        println!("ok={}", self.latencies.len());
        println!("errors={}", self.errors);
        println!(
            "rps={:.0}",
            self.latencies.len() as f64 / self.secs.max(1) as f64
        );
        println!("p50_ms={:.1}", self.percentile_ms(0.50));
        println!("p99_ms={:.1}", self.percentile_ms(0.99));
        println!("max_ms={:.1}", self.percentile_ms(1.0));
        if let Some(e) = &self.first_error {
            eprintln!("first error: {e}");
            println!("first_error={}", e.replace('\n', " "));
        }
    }
}
