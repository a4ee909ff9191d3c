//! What one run measures: per-client recorders (latency histogram, counters, the times of
//! committed answers), merged into one [`Summary`] after the run.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

/// The measured window of a run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// When the clients started (warm-up begins).
    pub(crate) base: Instant,
    /// When measuring begins (after the warm-up).
    pub(crate) start: Instant,
    /// When measuring ends.
    pub(crate) end: Instant,
}

impl Window {
    /// A window of `duration` after `warmup`, from now.
    pub(crate) fn after(warmup: Duration, duration: Duration) -> Self {
        let base = Instant::now();
        Self { base, start: base + warmup, end: base + warmup + duration }
    }

    fn micros(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX)
    }
}

/// One client's measurements.
#[derive(Debug)]
pub(crate) struct Recorder {
    window: Window,
    hist: Histogram<u64>,
    completed: u64,
    accepted: u64,
    /// Every committed answer that arrived inside the window, as (sent, answered) in
    /// microseconds since `window.base`, whenever its request was sent.
    commits: Vec<(u64, u64)>,
}

impl Recorder {
    /// An empty recorder for `window`.
    pub(crate) fn new(window: Window) -> Self {
        // 1 µs .. 60 s at 3 significant digits; `new_with_bounds` only fails on bad bounds.
        let hist = Histogram::new_with_bounds(1, 60_000_000, 3)
            .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()));
        Self { window, hist, completed: 0, accepted: 0, commits: Vec::with_capacity(1024) }
    }

    /// A request sent at `sent` completed at `done` (`accepted`: the bid won). Requests
    /// sent and completed inside the window count for throughput and latency; every answer
    /// that arrives inside it counts for the gaps (an answer to a warm-up request too). No
    /// allocation unless `commits` grows.
    pub(crate) fn complete(&mut self, sent: Instant, done: Instant, accepted: bool) {
        if done < self.window.start || done > self.window.end {
            return;
        }
        self.commits.push((self.window.micros(sent), self.window.micros(done)));
        if sent < self.window.start {
            return;
        }
        let us = u64::try_from(done.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.max(1));
        self.completed += 1;
        self.accepted += u64::from(accepted);
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Latency {
    /// Median.
    pub(crate) p50_us: u64,
    /// 90th percentile.
    pub(crate) p90_us: u64,
    /// 99th percentile.
    pub(crate) p99_us: u64,
    /// Largest.
    pub(crate) max_us: u64,
    /// Mean.
    pub(crate) mean_us: f64,
}

/// The leader stop of a failover run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Kill {
    /// Milliseconds after the start of the window.
    pub(crate) at_ms: f64,
    /// Name of the stopped server (`n1`.., etcd: `e1`..).
    pub(crate) server: String,
    /// `SIGKILL` or `SIGTERM`.
    pub(crate) signal: String,
    /// From the signal to the first committed answer to a request first sent at or after it
    /// (an answer already on its way when the leader died says nothing about the failover).
    pub(crate) to_first_commit_ms: Option<f64>,
    /// From the signal to the end of the window: without an answer, the failover took longer
    /// than this.
    pub(crate) left_ms: f64,
}

/// The leader stops of one backend with one signal, over every run of an invocation.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Failover {
    /// `auction` or `etcd`.
    pub(crate) backend: String,
    /// `SIGKILL` or `SIGTERM`.
    pub(crate) signal: String,
    /// [`Kill::to_first_commit_ms`] of each run, in run order (`None`: no request sent after
    /// the signal was answered inside the window).
    pub(crate) runs_ms: Vec<Option<f64>>,
    /// Median over all runs, an unanswered run counting as longer than every answered one
    /// (the mean of the middle two for an even count); `None` when that falls on an
    /// unanswered run.
    pub(crate) median_ms: Option<f64>,
    /// Largest; `None` when a run was unanswered.
    pub(crate) max_ms: Option<f64>,
    /// Runs without an answer after the signal.
    pub(crate) unanswered: usize,
    /// Each unanswered run had no answer for at least this long (the shortest
    /// [`Kill::left_ms`] among them): the bound on the median or maximum they hide.
    pub(crate) unanswered_after_ms: Option<f64>,
}

/// Groups the leader stops of `runs` by backend and signal, in order of first appearance.
pub(crate) fn failovers(runs: &[Summary]) -> Vec<Failover> {
    let mut out: Vec<Failover> = Vec::new();
    for s in runs {
        let Some(k) = &s.kill else { continue };
        let i = match out.iter().position(|f| f.backend == s.backend && f.signal == k.signal) {
            Some(i) => i,
            None => {
                out.push(Failover {
                    backend: s.backend.clone(),
                    signal: k.signal.clone(),
                    runs_ms: Vec::new(),
                    median_ms: None,
                    max_ms: None,
                    unanswered: 0,
                    unanswered_after_ms: None,
                });
                out.len() - 1
            }
        };
        if let Some(f) = out.get_mut(i) {
            f.runs_ms.push(k.to_first_commit_ms);
            if k.to_first_commit_ms.is_none() {
                f.unanswered += 1;
                let after = f.unanswered_after_ms.map_or(k.left_ms, |a| a.min(k.left_ms));
                f.unanswered_after_ms = Some(after);
            }
        }
    }
    for f in &mut out {
        // Answered runs in order, then the unanswered ones (`None`), which took longer.
        let mut v = f.runs_ms.clone();
        v.sort_by(|a, b| match (a, b) {
            (Some(a), Some(b)) => a.total_cmp(b),
            (a, b) => b.is_some().cmp(&a.is_some()),
        });
        let n = v.len();
        f.max_ms = if f.unanswered > 0 { None } else { v.last().copied().flatten() };
        f.median_ms = match n {
            0 => None,
            n if n % 2 == 1 => v.get(n / 2).copied().flatten(),
            n => match (v.get(n / 2 - 1), v.get(n / 2)) {
                (Some(Some(lo)), Some(Some(hi))) => Some((lo + hi) / 2.0),
                _ => None,
            },
        };
    }
    out
}

/// The result of one run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Summary {
    /// `auction` or `etcd`.
    pub(crate) backend: String,
    /// Concurrent clients.
    pub(crate) clients: usize,
    /// Auctions (etcd: keys) bid on.
    pub(crate) auctions: usize,
    /// Seconds measured.
    pub(crate) duration_s: f64,
    /// Seconds of warm-up before.
    pub(crate) warmup_s: f64,
    /// Completed requests in the window (accepted or rejected bids).
    pub(crate) completed: u64,
    /// Accepted bids in the window.
    pub(crate) accepted: u64,
    /// `completed / duration`.
    pub(crate) requests_per_s: f64,
    /// `accepted / duration`.
    pub(crate) accepted_per_s: f64,
    /// Latency of completed requests (first send to answer, retries included).
    pub(crate) latency: Latency,
    /// Longest gap between two consecutive committed answers (any client) in the window.
    pub(crate) max_gap_ms: f64,
    /// Re-sent attempts (failover, timeouts, unavailable).
    pub(crate) retries: u64,
    /// The leader kill, if one was asked for.
    pub(crate) kill: Option<Kill>,
    /// Resident set size of each local server at the end, KiB.
    pub(crate) rss_kib: Vec<u64>,
    /// `/proc/loadavg` (1-minute) at the start and end of the run.
    pub(crate) loadavg: [f64; 2],
}

/// Merges the clients' recorders.
#[derive(Debug)]
pub(crate) struct Merged {
    /// Completed requests.
    pub(crate) completed: u64,
    /// Accepted bids.
    pub(crate) accepted: u64,
    /// Latency percentiles.
    pub(crate) latency: Latency,
    /// Committed answers inside the window, (sent, answered) in µs since the window base,
    /// sorted by answer time.
    pub(crate) commits: Vec<(u64, u64)>,
    /// Window used.
    pub(crate) window: Window,
}

impl Merged {
    /// Merges `recorders` (at least one).
    pub(crate) fn new(window: Window, recorders: Vec<Recorder>) -> Self {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
            .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()));
        let (mut completed, mut accepted) = (0, 0);
        let mut commits = Vec::new();
        for r in recorders {
            // Same bounds on both sides: adding cannot fail.
            let _ = hist.add(&r.hist);
            completed += r.completed;
            accepted += r.accepted;
            commits.extend_from_slice(&r.commits);
        }
        commits.sort_unstable_by_key(|&(_, done)| done);
        let latency = if hist.is_empty() {
            Latency::default()
        } else {
            Latency {
                p50_us: hist.value_at_quantile(0.50),
                p90_us: hist.value_at_quantile(0.90),
                p99_us: hist.value_at_quantile(0.99),
                max_us: hist.max(),
                mean_us: hist.mean(),
            }
        };
        Self { completed, accepted, latency, commits, window }
    }

    /// The longest gap between consecutive committed answers, counting the window's edges
    /// as answers (a window with no answer at all is one long gap).
    pub(crate) fn max_gap(&self) -> Duration {
        let start = self.window.micros(self.window.start);
        let end = self.window.micros(self.window.end);
        let mut prev = start;
        let mut gap = 0;
        for t in self.commits.iter().map(|&(_, done)| done).chain(std::iter::once(end)) {
            gap = gap.max(t.saturating_sub(prev));
            prev = t;
        }
        Duration::from_micros(gap)
    }

    /// The first committed answer to a request first sent at or after `t`, as a duration
    /// after `t`.
    pub(crate) fn first_commit_sent_after(&self, t: Instant) -> Option<Duration> {
        let at = self.window.micros(t);
        self.commits
            .iter()
            .find(|&&(sent, _)| sent >= at)
            .map(|&(_, done)| Duration::from_micros(done - at))
    }

    /// Milliseconds from `t` to the window end.
    pub(crate) fn ms_left(&self, t: Instant) -> f64 {
        self.window.end.saturating_duration_since(t).as_secs_f64() * 1000.0
    }

    /// Milliseconds from the window start to `t` (negative: before it).
    pub(crate) fn ms_into_window(&self, t: Instant) -> f64 {
        let t = self.window.micros(t) as f64;
        let s = self.window.micros(self.window.start) as f64;
        (t - s) / 1000.0
    }
}

/// The 1-minute load average, or 0 where `/proc/loadavg` cannot be read.
pub(crate) fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_the_window_edges_and_every_answer_inside_it() {
        let w = Window::after(Duration::from_millis(100), Duration::from_millis(1000));
        let mut r = Recorder::new(w);
        let ms = |m: u64| w.base + Duration::from_millis(m);
        r.complete(ms(50), ms(60), true); // warm-up: ignored
        r.complete(ms(90), ms(130), true); // sent in the warm-up: a gap point, not a latency
        r.complete(ms(150), ms(200), true);
        r.complete(ms(200), ms(700), false);
        r.complete(ms(1000), ms(1200), true); // ends after the window: ignored
        let m = Merged::new(w, vec![r]);
        assert_eq!((m.completed, m.accepted), (2, 1));
        assert_eq!(m.max_gap(), Duration::from_millis(500));
        assert!((m.latency.p50_us as i64 - 50_000).abs() < 100);
    }

    fn run_with(backend: &str, signal: &str, ms: Option<f64>) -> Summary {
        run_left(backend, signal, ms, 5000.0)
    }

    fn run_left(backend: &str, signal: &str, ms: Option<f64>, left_ms: f64) -> Summary {
        Summary {
            backend: backend.into(),
            clients: 1,
            auctions: 1,
            duration_s: 1.0,
            warmup_s: 0.0,
            completed: 0,
            accepted: 0,
            requests_per_s: 0.0,
            accepted_per_s: 0.0,
            latency: Latency::default(),
            max_gap_ms: 0.0,
            retries: 0,
            kill: Some(Kill {
                at_ms: 0.0,
                server: "n1".into(),
                signal: signal.into(),
                to_first_commit_ms: ms,
                left_ms,
            }),
            rss_kib: Vec::new(),
            loadavg: [0.0, 0.0],
        }
    }

    #[test]
    fn failovers_are_grouped_by_backend_and_signal_with_median_and_max() {
        let runs = [
            run_with("auction", "SIGKILL", Some(160.0)),
            run_with("etcd", "SIGKILL", Some(1200.0)),
            run_with("auction", "SIGKILL", Some(140.0)),
            run_with("auction", "SIGTERM", Some(20.0)),
            run_with("etcd", "SIGKILL", None),
            run_with("auction", "SIGKILL", Some(150.0)),
            run_with("auction", "SIGKILL", Some(240.0)),
        ];
        let f = failovers(&runs);
        let keys: Vec<(&str, &str)> =
            f.iter().map(|f| (f.backend.as_str(), f.signal.as_str())).collect();
        assert_eq!(keys, [("auction", "SIGKILL"), ("etcd", "SIGKILL"), ("auction", "SIGTERM")]);
        assert_eq!(f[0].runs_ms, [Some(160.0), Some(140.0), Some(150.0), Some(240.0)]);
        assert_eq!((f[0].median_ms, f[0].max_ms, f[0].unanswered), (Some(155.0), Some(240.0), 0));
        assert_eq!(f[0].unanswered_after_ms, None);
        // An unanswered run took longer than any answered one: the two runs' median is
        // unknown, and so is the maximum.
        assert_eq!((f[1].median_ms, f[1].max_ms, f[1].unanswered), (None, None, 1));
        assert_eq!(f[1].unanswered_after_ms, Some(5000.0));
        assert_eq!((f[2].median_ms, f[2].max_ms), (Some(20.0), Some(20.0)));
    }

    #[test]
    fn unanswered_runs_count_as_the_slowest() {
        let runs = [
            run_left("etcd", "SIGKILL", None, 4900.0),
            run_left("etcd", "SIGKILL", Some(1300.0), 5000.0),
            run_left("etcd", "SIGKILL", Some(1100.0), 5000.0),
            run_left("etcd", "SIGKILL", None, 5000.0),
            run_left("etcd", "SIGKILL", Some(1200.0), 5000.0),
        ];
        let f = &failovers(&runs)[0];
        // Sorted: 1100, 1200, 1300, unanswered, unanswered.
        assert_eq!((f.median_ms, f.max_ms, f.unanswered), (Some(1300.0), None, 2));
        assert_eq!(f.unanswered_after_ms, Some(4900.0));
        let f = &failovers(&runs[..4])[0];
        assert_eq!(f.median_ms, None, "the middle two are 1300 and an unanswered run");
    }

    #[test]
    fn the_failover_time_skips_answers_to_requests_sent_before_the_kill() {
        let w = Window::after(Duration::ZERO, Duration::from_millis(1000));
        let mut r = Recorder::new(w);
        let ms = |m: u64| w.base + Duration::from_millis(m);
        r.complete(ms(290), ms(301), true); // in flight at the kill (300 ms)
        r.complete(ms(299), ms(480), true); // sent before, answered after the failover
        r.complete(ms(300), ms(500), true); // the first request sent after the kill
        r.complete(ms(320), ms(490), true); // answered sooner, sent later
        let m = Merged::new(w, vec![r]);
        assert_eq!(m.first_commit_sent_after(ms(300)), Some(Duration::from_millis(190)));
        assert_eq!(m.first_commit_sent_after(ms(900)), None);
    }
}
