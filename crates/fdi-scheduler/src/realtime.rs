//! Realtime tasks: one long run per started task, reading successive incremental windows, under
//! a supervisor that restarts it with backoff after a failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fdi_monitor::{RunRecord, RunView, Trigger};
use fdi_types::{ExecuteStatus, PositionStatus, StepCode, TaskDetail, TaskType};
use tokio_util::sync::CancellationToken;

use crate::runs::Launch;
use crate::{ResolvedTask, Scheduler};

/// Restart delay after `failures` consecutive failed runs: 1 s, 2 s, 4 s ... at most 60 s.
pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

impl Scheduler {
    pub(crate) async fn realtime_loop(self: Arc<Self>) {
        // task id -> (consecutive failures, id of the last failed run seen, earliest restart ms)
        let mut failures: HashMap<String, (u32, String, i64)> = HashMap::new();
        let period = self.cfg.realtime_poll.min(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            if let Err(e) = self.supervise(&mut failures).await {
                tracing::warn!(error = %e, "realtime supervisor pass failed");
            }
        }
    }

    async fn supervise(
        self: &Arc<Self>,
        failures: &mut HashMap<String, (u32, String, i64)>,
    ) -> crate::Result<()> {
        // Stop local realtime runs whose task was stopped (possibly through another node).
        let local: Vec<(String, CancellationToken)> = self
            .active
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, a)| a.realtime)
            .map(|(t, a)| (t.clone(), a.stop.clone()))
            .collect();
        for (task_id, stop) in local {
            if self.store.task_status(&task_id).await? == 0 {
                stop.cancel();
            }
        }
        let now = fdi_types::now_millis();
        for task_id in self.store.started_realtime_tasks().await? {
            if self.active.lock().unwrap().contains_key(&task_id)
                || self.store.claim_of(&task_id).await?.is_some()
            {
                continue;
            }
            let Some(brief) = self.resolver.describe(&task_id).await? else {
                continue;
            };
            if brief.task_type != TaskType::Realtime {
                continue;
            }
            // Back off after failures: the last run ended ERROR.
            if let Some(last) = self.monitor.last_run(&task_id).await?
                && last.execute_status == ExecuteStatus::Error
            {
                let entry = failures
                    .entry(task_id.clone())
                    .or_insert((0, String::new(), 0));
                if entry.1 != last.id {
                    entry.0 += 1;
                    entry.1 = last.id.clone();
                    entry.2 = last.end_ms.unwrap_or(now) + backoff(entry.0).as_millis() as i64;
                }
                if now < entry.2 {
                    continue;
                }
            } else {
                failures.remove(&task_id);
            }
            let task = match self.resolver.resolve(&task_id).await {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => {
                    self.record_dispatch_failure(&task_id, Trigger::Realtime, now, &e.message)
                        .await?;
                    continue;
                }
            };
            match self.launch(task, Trigger::Realtime, now, None).await {
                Ok(Launch::Started(run_id)) => {
                    tracing::info!(task_id, run_id, "realtime run started")
                }
                Ok(Launch::Busy(_)) => {}
                Err(e) => tracing::warn!(task_id, error = %e, "cannot start realtime run"),
            }
        }
        Ok(())
    }

    /// A realtime run of a message source: one engine run that follows the queue or topic,
    /// committing the target in micro-batches and acknowledging the source after each commit,
    /// until stopped (what was written is committed: SUCCESS), terminated (CANCELLED) or failed
    /// (ERROR; the supervisor restarts it with backoff, resuming from the last acknowledgement).
    async fn follow_messages(
        &self,
        task: ResolvedTask,
        detail: TaskDetail,
        run: &mut RunView,
        cancel: CancellationToken,
        stop: CancellationToken,
    ) {
        let source = detail.source.table.clone().unwrap_or_default();
        run.add_step(
            StepCode::TASK_START,
            PositionStatus::Normal,
            &format!("realtime run started: following \"{source}\""),
        );
        let _ = self.monitor.save(run).await;
        let mut req = self.request(&task, detail, &run.id, None, cancel);
        req.options.follow = true;
        req.options.stop = Some(stop);
        req.options.position_interval = self.cfg.realtime_progress;
        if let Some(outcome) = self.execute(req, run, true).await {
            run.finish(outcome);
        }
    }

    /// The body of a realtime run: poll the next window, copy it, advance the watermark, repeat
    /// until stopped (ends SUCCESS), terminated (CANCELLED) or failed (ERROR, with the failing
    /// window's cause in the remarks).
    pub(crate) async fn drive_realtime(
        &self,
        task: ResolvedTask,
        detail: TaskDetail,
        run: &mut RunView,
        cancel: CancellationToken,
        stop: CancellationToken,
    ) {
        if !detail.source.meta_data.is_empty() {
            return self.follow_messages(task, detail, run, cancel, stop).await;
        }
        if !detail.source.need_inc_migration {
            run.fail(
                StepCode::DISPATCH_FAILED,
                "a REALTIME task on a relational source needs need_inc_migration with sourceDateColumn (it polls successive windows)",
            );
            return;
        }
        run.add_step(
            StepCode::TASK_START,
            PositionStatus::Normal,
            "realtime run started",
        );
        let _ = self.monitor.save(run).await;
        let progress_every = self.cfg.realtime_progress.as_millis() as i64;
        let mut last_progress = fdi_types::now_millis();
        let mut windows = 0u64;
        let mut rows_in_period = 0u64;
        let lag = fdi_metrics::LagGauge::realtime(&task.task_id);
        loop {
            let window = match self.next_window(&task.task_id, &detail).await {
                Ok(Some(w)) => w,
                Ok(None) => return,
                Err(e) => {
                    run.fail(
                        StepCode::DISPATCH_FAILED,
                        &format!("cannot read the watermark: {e}"),
                    );
                    return;
                }
            };
            if !window.is_empty() {
                // What earlier windows committed: a window that fails or is terminated is
                // rolled back, so its rows leave the counts again.
                let before = run.data_count;
                let committed = (run.dirty_data_count, run.data_bytes);
                let req = self.request(
                    &task,
                    detail.clone(),
                    &run.id,
                    Some(window),
                    cancel.child_token(),
                );
                let Some(o) = self.execute(req, run, false).await else {
                    return;
                };
                match o.status {
                    ExecuteStatus::Success => {
                        run.data_count = before + o.rows_written;
                        run.read_ms += o.read_ms;
                        run.write_ms += o.write_ms;
                        run.window = Some(window);
                        rows_in_period += o.rows_written;
                        windows += 1;
                        let now = fdi_types::now_millis();
                        if let Err(e) = self
                            .store
                            .set_watermark(&task.task_id, window.end_ms, now)
                            .await
                        {
                            run.fail(
                                StepCode::DISPATCH_FAILED,
                                &format!("cannot advance the watermark: {e}"),
                            );
                            return;
                        }
                        lag.set_ms(now - window.end_ms);
                    }
                    ExecuteStatus::Cancelled => {
                        let rolled_back = run.data_count.saturating_sub(before);
                        (run.data_count, run.dirty_data_count, run.data_bytes) =
                            (before, committed.0, committed.1);
                        run.execute_status = ExecuteStatus::Cancelled;
                        run.status_code = StepCode::FORCE_CANCELLED.0;
                        run.end_ms = Some(fdi_types::now_millis());
                        run.remarks = format!(
                            "terminated after {windows} windows; the window in progress was rolled back ({rolled_back} rows written in it)"
                        );
                        run.add_step(
                            StepCode::FORCE_CANCELLED,
                            PositionStatus::Normal,
                            &run.remarks.clone(),
                        );
                        return;
                    }
                    _ => {
                        let rolled_back = run.data_count.saturating_sub(before);
                        (run.data_count, run.dirty_data_count, run.data_bytes) =
                            (before, committed.0, committed.1);
                        let code = o.status_code;
                        let remarks = format!(
                            "window [{}, {}) failed after {windows} windows and was rolled back ({} rows read, {rolled_back} written in it): {}",
                            window.begin_ms, window.end_ms, o.rows_read, o.remarks
                        );
                        run.position = o.position;
                        run.add_step(code, PositionStatus::InternalErr, &remarks);
                        run.execute_status = ExecuteStatus::Error;
                        run.position_status = o.position_status;
                        run.status_code = code.0;
                        run.remarks = remarks;
                        run.end_ms = Some(fdi_types::now_millis());
                        return;
                    }
                }
            }
            let now = fdi_types::now_millis();
            if now - last_progress >= progress_every {
                last_progress = now;
                run.add_step(
                    StepCode::WRITING,
                    PositionStatus::Normal,
                    &format!(
                        "realtime progress: {windows} windows, {rows_in_period} rows since the last entry, {} rows in all",
                        run.data_count
                    ),
                );
                rows_in_period = 0;
            }
            let _ = self.monitor.save(run).await;
            tokio::select! {
                _ = cancel.cancelled() => {
                    run.execute_status = ExecuteStatus::Cancelled;
                    run.status_code = StepCode::FORCE_CANCELLED.0;
                    run.end_ms = Some(fdi_types::now_millis());
                    run.remarks = format!("terminated after {windows} windows");
                    run.add_step(StepCode::FORCE_CANCELLED, PositionStatus::Normal, &run.remarks.clone());
                    return;
                }
                _ = stop.cancelled() => {
                    run.execute_status = ExecuteStatus::Success;
                    run.status_code = StepCode::RUN_FINISHED.0;
                    run.end_ms = Some(fdi_types::now_millis());
                    run.remarks = format!("stopped after {windows} windows, {} rows", run.data_count);
                    run.add_step(StepCode::RUN_FINISHED, PositionStatus::Normal, &run.remarks.clone());
                    return;
                }
                _ = tokio::time::sleep(self.cfg.realtime_poll) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let v: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(v, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
