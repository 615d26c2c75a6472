//! Run retention: old runs and their steps are pruned in the background, in small batches (one
//! short transaction each, so runs being written are never held up), never a run that is still
//! active. Every node prunes; deleting is idempotent.

use std::time::Duration;

use crate::Scheduler;

/// Which runs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Runs that started longer ago are deleted (None: kept whatever their age).
    pub max_age: Option<Duration>,
    /// Only this many of each task's newest runs are kept (None: no limit).
    pub per_task: Option<u64>,
    /// How often the pruning pass runs.
    pub every: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            max_age: Some(Duration::from_secs(30 * 86_400)),
            per_task: Some(10_000),
            every: Duration::from_secs(600),
        }
    }
}

/// Runs deleted per transaction.
const BATCH: i64 = 500;

impl Scheduler {
    pub(crate) async fn retention_loop(self: std::sync::Arc<Self>) {
        let policy = self.cfg.retention;
        if policy.max_age.is_none() && policy.per_task.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(policy.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.prune_runs().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "pruned old runs (retention)"),
                Err(e) => tracing::warn!(error = %e, "run retention pass failed; retrying later"),
            }
        }
    }

    /// One pruning pass over every task; returns how many runs were deleted.
    pub async fn prune_runs(&self) -> crate::Result<u64> {
        let policy = self.cfg.retention;
        let mut deleted = 0;
        if let Some(age) = policy.max_age {
            let before = fdi_types::now_millis() - age.as_millis() as i64;
            loop {
                let n = self.store.prune_runs_before(before, BATCH).await?;
                deleted += n;
                if n < BATCH as u64 || self.shutdown.is_cancelled() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        if let Some(keep) = policy.per_task {
            let keep = keep as i64;
            for task in self.store.tasks_with_runs_over(keep).await? {
                loop {
                    let n = self
                        .store
                        .prune_task_runs_beyond(&task, keep, BATCH)
                        .await?;
                    deleted += n;
                    if n < BATCH as u64 || self.shutdown.is_cancelled() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
        Ok(deleted)
    }
}
