//! The worker's I/O loop: events stream in, verdicts and summaries out.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use moat_bus::{Bus, BusConfig, EventFeed, ExchangeEvent, Summaries, Verdicts};
use moat_detect::{Decision, DetectConfig};
use serde::Serialize;

use crate::core::DetectorCore;
use crate::reorder::{Pushed, Reorder};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The bus.
    pub bus: BusConfig,
    /// This worker's number, `0..workers`.
    pub index: u32,
    /// How many workers share the partitions (`partition % workers == index` is ours).
    pub workers: u32,
    /// Engine thresholds (must match the gateways' `[detect]`).
    pub detect: DetectConfig,
    /// Reorder hold: how far out of arrival order exchanges may complete and still be
    /// decided in arrival order (see [`crate::reorder`]).
    pub hold: Duration,
    /// How often verdicts are published (summaries every fifth time).
    pub publish_every: Duration,
    /// Write every decision as a JSON line here (audits; comparison with `moat replay`).
    pub decisions_out: Option<PathBuf>,
    /// Stop once this many exchanges are decided (benchmarks; a one-off re-scoring of the
    /// retained stream). `None`: run until shut down.
    pub stop_after: Option<u64>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            bus: BusConfig::default(),
            index: 0,
            workers: 1,
            detect: DetectConfig::default(),
            hold: Duration::from_millis(500),
            publish_every: Duration::from_millis(100),
            decisions_out: None,
            stop_after: None,
        }
    }
}

/// What a worker did, reported when it stops.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerStats {
    /// Exchanges decided.
    pub decided: u64,
    /// Exchanges that completed too late to be decided in arrival order.
    pub late: u64,
    /// Undecodable events skipped.
    pub undecodable: u64,
    /// Verdicts published.
    pub verdicts: u64,
    /// Summaries published.
    pub summaries: u64,
    /// Accounts with state.
    pub accounts: usize,
}

#[derive(Serialize)]
struct DecisionLine<'a> {
    account: &'a str,
    ts_us: i64,
    replica: &'a str,
    seq: u64,
    #[serde(flatten)]
    decision: &'a Decision,
}

/// The partitions worker `index` of `workers` owns.
pub fn owned_partitions(partitions: u32, index: u32, workers: u32) -> Vec<u32> {
    (0..partitions)
        .filter(|p| p % workers.max(1) == index)
        .collect()
}

/// Runs a worker until `shutdown` resolves (or the feed fails), then publishes what is left.
pub async fn run(
    opts: WorkerOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<WorkerStats> {
    anyhow::ensure!(
        opts.workers >= 1 && opts.index < opts.workers,
        "worker index {} is not below the number of workers {}",
        opts.index,
        opts.workers
    );
    anyhow::ensure!(
        opts.workers <= opts.bus.partitions,
        "{} workers but only {} partitions: raise [bus] partitions",
        opts.workers,
        opts.bus.partitions
    );
    let bus = Bus::connect(opts.bus.clone(), true)
        .await
        .context("connecting to the bus")?;
    let owned = owned_partitions(opts.bus.partitions, opts.index, opts.workers);
    let mut feed = EventFeed::open(&bus, Some(&owned))
        .await
        .context("opening the events stream")?;
    let verdicts = Verdicts::open(&bus)
        .await
        .context("opening the verdict bucket")?;
    let summaries = Summaries::open(&bus)
        .await
        .context("opening the summary bucket")?;
    let mut summary_feed = Box::pin(
        summaries
            .watch()
            .await
            .context("watching the summary bucket")?,
    );
    let mut out = match &opts.decisions_out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    tracing::info!(
        worker = opts.index,
        workers = opts.workers,
        partitions = ?owned,
        "detector worker started; rebuilding state from the stream"
    );

    let mut core = DetectorCore::new(opts.index, opts.detect.clone());
    let mut reorder = Reorder::new(opts.hold.as_micros() as i64);
    let mut stats = WorkerStats::default();
    let mut links_dirty = false;
    let mut ticks: u64 = 0;
    let mut tick = tokio::time::interval(opts.publish_every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_log = Instant::now();
    tokio::pin!(shutdown);

    let decide = |core: &mut DetectorCore,
                  out: &mut Option<std::io::BufWriter<std::fs::File>>,
                  ev: ExchangeEvent|
     -> anyhow::Result<()> {
        let d = core.decide(&ev);
        if let Some(w) = out.as_mut() {
            serde_json::to_writer(
                &mut *w,
                &DecisionLine {
                    account: &ev.account,
                    ts_us: ev.ts_us,
                    replica: &ev.replica,
                    seq: ev.seq,
                    decision: &d,
                },
            )?;
            w.write_all(b"\n")?;
        }
        metrics::counter!("moat_detect_worker_decisions_total", "action" => d.action.as_str())
            .increment(1);
        Ok(())
    };

    let done = |core: &DetectorCore| opts.stop_after.is_some_and(|n| core.decided() >= n);
    loop {
        if done(&core) {
            break;
        }
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            msg = feed.next() => {
                let Some(msg) = msg else { anyhow::bail!("the events stream ended") };
                let d = msg.context("reading the events stream")?;
                match d.event {
                    Ok(ev) => {
                        if let Pushed::Late(ev) = reorder.push(ev) {
                            stats.late += 1;
                            metrics::counter!("moat_detect_worker_late_events_total").increment(1);
                            decide(&mut core, &mut out, *ev)?;
                        }
                    }
                    Err(e) => {
                        stats.undecodable += 1;
                        tracing::warn!(seq = d.stream_seq, error = %e, "skipping an undecodable event");
                    }
                }
                // release what the newest event's time allows without waiting for the tick
                let wm = reorder.watermark(None);
                while let Some(ev) = reorder.pop_ready(wm) {
                    decide(&mut core, &mut out, ev)?;
                }
            }
            s = summary_feed.next() => {
                match s {
                    Some(Ok((_, Some(rec)))) => { core.on_summary(rec); links_dirty = true; }
                    Some(Ok((_, None))) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "summary feed error"),
                    None => anyhow::bail!("the summary feed ended"),
                }
            }
            _ = tick.tick() => {
                ticks += 1;
                let caught_up = feed.caught_up();
                let now_us = chrono::Utc::now().timestamp_micros();
                let wm = reorder.watermark(caught_up.then_some(now_us));
                while let Some(ev) = reorder.pop_ready(wm) {
                    decide(&mut core, &mut out, ev)?;
                }
                if links_dirty && ticks.is_multiple_of(5) {
                    core.apply_links();
                    links_dirty = false;
                }
                stats.verdicts += publish_verdicts(&verdicts, &mut core, now_us / 1000).await;
                if ticks.is_multiple_of(5) {
                    stats.summaries += publish_summaries(&summaries, &mut core).await;
                    if let Some(w) = out.as_mut() { w.flush()?; }
                }
                if last_log.elapsed() >= Duration::from_secs(10) {
                    last_log = Instant::now();
                    tracing::info!(
                        decided = core.decided(),
                        held = reorder.len(),
                        late = reorder.late(),
                        accounts = core.engine().account_count(),
                        caught_up,
                        "detector worker"
                    );
                }
            }
        }
    }
    for ev in reorder.drain() {
        decide(&mut core, &mut out, ev)?;
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    stats.verdicts += publish_verdicts(&verdicts, &mut core, now_ms).await;
    stats.summaries += publish_summaries(&summaries, &mut core).await;
    if let Some(mut w) = out {
        w.flush()?;
    }
    stats.decided = core.decided();
    stats.accounts = core.engine().account_count();
    tracing::info!(?stats, "detector worker stopped");
    Ok(stats)
}

async fn publish_verdicts(verdicts: &Verdicts, core: &mut DetectorCore, now_ms: i64) -> u64 {
    let batch = core.take_verdicts(now_ms);
    let n = batch.len() as u64;
    for chunk in batch.chunks(64) {
        let puts = chunk.iter().map(|v| verdicts.put(v));
        for (v, r) in chunk.iter().zip(futures::future::join_all(puts).await) {
            if let Err(e) = r {
                tracing::warn!(account = %v.account, error = %e, "publishing a verdict failed");
            }
        }
    }
    metrics::counter!("moat_detect_worker_verdicts_total").increment(n);
    n
}

async fn publish_summaries(summaries: &Summaries, core: &mut DetectorCore) -> u64 {
    let batch = core.take_summaries();
    let n = batch.len() as u64;
    for chunk in batch.chunks(64) {
        let puts = chunk.iter().map(|s| summaries.put(s));
        for r in futures::future::join_all(puts).await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "publishing a summary failed");
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::owned_partitions;

    #[test]
    fn partitions_are_split_without_overlap() {
        let a = owned_partitions(16, 0, 3);
        let b = owned_partitions(16, 1, 3);
        let c = owned_partitions(16, 2, 3);
        assert_eq!(a.len() + b.len() + c.len(), 16);
        assert!(a.iter().all(|p| !b.contains(p) && !c.contains(p)));
        assert_eq!(owned_partitions(4, 0, 1), vec![0, 1, 2, 3]);
    }
}
