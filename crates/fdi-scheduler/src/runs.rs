//! Claiming, executing and recovering runs; the heartbeat; the plan loop.

use std::sync::Arc;
use std::time::Duration;

use fdi_engine::{EngineOptions, RunRequest};
use fdi_monitor::{RunRecord, RunView, Trigger};
use fdi_store::PlanRow;
use fdi_types::{
    ApiError, ErrorCode, ExecuteStatus, IncrementalWindow, PositionStatus, StepCode, TaskDetail,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::plans::{self, MisfirePolicy, PlanDoc};
use crate::{Active, ResolvedTask, Result, Scheduler};

pub(crate) enum Launch {
    Started(String),
    /// The task already has an active run (its id).
    Busy(String),
}

impl Scheduler {
    /// Cancelled once this node's shutdown has ended its runs (and recorded their ends): what
    /// follows runs for a client (an event stream) stops then, so the server can stop.
    pub fn stopped(&self) -> CancellationToken {
        self.stopped.clone()
    }

    fn lease_until(&self) -> i64 {
        fdi_types::now_millis() + self.cfg.lease.as_millis() as i64
    }

    /// Claim the task and start a run of it on this node.
    pub(crate) async fn launch(
        self: &Arc<Self>,
        task: ResolvedTask,
        trigger: Trigger,
        dispatch_ms: i64,
        note: Option<String>,
    ) -> Result<Launch> {
        if self.shutdown.is_cancelled() {
            return Err(
                ApiError::new(ErrorCode::ManualStartFailed, "the server is shutting down").into(),
            );
        }
        // A combination task's detail is its own settings (read when its run starts).
        let detail = if task.kind.is_multi() {
            TaskDetail::default()
        } else {
            TaskDetail::parse(&task.raw_detail)?
        };
        if let Some(a) = self.active.lock().unwrap().get(&task.task_id) {
            return Ok(Launch::Busy(a.run_id.clone()));
        }
        let run_id = fdi_types::new_id();
        if !self.claim(&task.task_id, &run_id).await? {
            let holder = self.store.claim_of(&task.task_id).await?;
            return Ok(Launch::Busy(holder.map(|c| c.run_id).unwrap_or_default()));
        }
        let mut run = RunView::starting(
            &task.task_id,
            &run_id,
            trigger,
            dispatch_ms,
            &self.cfg.node_id,
        );
        if let Some(note) = note {
            run.add_step(StepCode::LOG_REPORT_FAILED, PositionStatus::Normal, &note);
        }
        if let Err(e) = self.monitor.create(&mut run).await {
            let _ = self.store.release_claim(&task.task_id, &run_id).await;
            return Err(e.into());
        }
        let cancel = self.shutdown.child_token();
        let stop = CancellationToken::new();
        let realtime = trigger == Trigger::Realtime;
        self.active.lock().unwrap().insert(
            task.task_id.clone(),
            Active {
                run_id: run_id.clone(),
                cancel: cancel.clone(),
                stop: stop.clone(),
                handle: None,
                realtime,
            },
        );
        fdi_metrics::run_started();
        let this = Arc::clone(self);
        let task_id = task.task_id.clone();
        let span = tracing::info_span!("run", task_id = %task_id, run_id = %run_id);
        let run_end = task.run_end.clone();
        let handle = tokio::spawn(
            async move {
                if task.kind.is_multi() {
                    this.drive_cdc(task, &mut run, cancel, stop).await;
                } else if realtime {
                    this.drive_realtime(task, detail, &mut run, cancel, stop)
                        .await;
                } else {
                    this.drive_once(task, detail, &mut run, cancel).await;
                }
                if let Some(target) = &run_end {
                    announce_run_end(target, &mut run).await;
                }
                this.finish_run(&mut run).await;
            }
            .instrument(span),
        );
        if let Some(a) = self.active.lock().unwrap().get_mut(&task_id) {
            a.handle = Some(handle);
        }
        Ok(Launch::Started(run_id))
    }

    /// Take the task's claim; an expired claim of a dead node is cleared first.
    async fn claim(&self, task_id: &str, run_id: &str) -> Result<bool> {
        let node = &self.cfg.node_id;
        if self
            .store
            .try_claim(task_id, run_id, node, self.lease_until())
            .await?
        {
            return Ok(true);
        }
        match self.store.claim_of(task_id).await? {
            Some(c) if c.lease_until < fdi_types::now_millis() => {
                self.end_orphan(&c.task_id, &c.run_id).await?;
                Ok(self
                    .store
                    .try_claim(task_id, run_id, node, self.lease_until())
                    .await?)
            }
            _ => Ok(false),
        }
    }

    /// Record the run's end, release its claim, forget it locally.
    ///
    /// While the store is unreachable the end is retried with backoff (the run stays active here,
    /// so its lease keeps being renewed once the store answers again): a run that ended during a
    /// store outage is recorded with its real outcome when the store is back.
    async fn finish_run(&self, run: &mut RunView) {
        if run.execute_status == ExecuteStatus::Success {
            // Done, however the run got there (a stopped realtime run, an in-server copy).
            run.progress = Some(100);
            run.remaining_ms = Some(0);
        }
        let mut wait = Duration::from_millis(500);
        let mut noted = false;
        loop {
            match self.monitor.save(run).await {
                Ok(()) => break,
                Err(e) if e.is_unavailable() && !self.shutdown.is_cancelled() => {
                    if !noted {
                        // Said in the run's own log once the store takes it (the run keeps
                        // its outcome and status code).
                        let code = run.status_code;
                        let at = fdi_types::now_millis();
                        run.add_step(
                            StepCode::LOG_REPORT_FAILED,
                            PositionStatus::Normal,
                            &format!("the metadata store was unreachable when the run ended (at {}): its end was recorded once the store was back", utc(at)),
                        );
                        run.status_code = code;
                        noted = true;
                    }
                    tracing::warn!(task_id = run.task_id, run_id = run.id, error = %e, retry_in = ?wait, "the store is unreachable: the end of the run will be recorded when it is back");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::error!(task_id = run.task_id, run_id = run.id, error = %e, "cannot record the end of the run");
                    break;
                }
            }
        }
        if let Err(e) = self.store.release_claim(&run.task_id, &run.id).await {
            tracing::error!(task_id = run.task_id, run_id = run.id, error = %e, "cannot release the run's claim");
        }
        self.active.lock().unwrap().remove(&run.task_id);
        crate::run_end::record_metrics(run);
        tracing::info!(
            task_id = run.task_id,
            run_id = run.id,
            status = run.execute_status.as_str(),
            rows = run.data_count,
            "run ended"
        );
    }

    /// The window the task's next incremental run reads, or None for a full read.
    pub(crate) async fn next_window(
        &self,
        task_id: &str,
        detail: &TaskDetail,
    ) -> Result<Option<IncrementalWindow>> {
        let s = &detail.source;
        if !s.need_inc_migration {
            return Ok(None);
        }
        let compensation_ms = s.compensation_time.unwrap_or(0).max(0) * 1000;
        let end_ms = fdi_types::now_millis() - compensation_ms;
        // The first window (no watermark yet) also loads the rows whose cursor is NULL.
        let (begin_ms, include_nulls) = match self.store.watermark(task_id).await? {
            Some(w) => (w, false),
            None => (s.data_timestamp.unwrap_or(0), true),
        };
        Ok(Some(IncrementalWindow {
            begin_ms,
            end_ms: end_ms.max(begin_ms),
            include_nulls,
        }))
    }

    /// Build the engine request for one run (one window when incremental).
    pub(crate) fn request(
        &self,
        task: &ResolvedTask,
        detail: TaskDetail,
        run_id: &str,
        window: Option<IncrementalWindow>,
        cancel: CancellationToken,
    ) -> RunRequest {
        RunRequest {
            task_id: task.task_id.clone(),
            run_id: run_id.to_string(),
            detail,
            source: task.source.clone(),
            target: task.target.clone(),
            cancel,
            options: EngineOptions::default(),
            window,
            dirty: task.dirty.clone(),
        }
    }

    /// One engine run, its events folded into the run record; the watermark advances only after
    /// the write has committed (SUCCESS).
    async fn drive_once(
        &self,
        task: ResolvedTask,
        detail: TaskDetail,
        run: &mut RunView,
        cancel: CancellationToken,
    ) {
        let window = match self.next_window(&task.task_id, &detail).await {
            Ok(w) => w,
            Err(e) => {
                run.fail(
                    StepCode::DISPATCH_FAILED,
                    &format!("cannot read the incremental watermark: {e}"),
                );
                return;
            }
        };
        run.window = window;
        let req = self.request(&task, detail, &run.id, window, cancel);
        let outcome = self.execute(req, run, true).await;
        let Some(outcome) = outcome else { return };
        let success = outcome.status == ExecuteStatus::Success;
        run.finish(outcome);
        if success && let Some(w) = window {
            let now = fdi_types::now_millis();
            if let Err(e) = self.store.set_watermark(&task.task_id, w.end_ms, now).await {
                // The data is committed; the next run re-reads this window (upserts keep it
                // idempotent) rather than skipping it.
                tracing::error!(task_id = task.task_id, error = %e, "cannot advance the watermark");
                run.remarks = format!("{} (watermark not advanced: {e})", run.remarks);
            }
        }
    }

    /// Run the engine, folding its events into `run` (steps appended when `with_steps`) and
    /// saving progress; None when the engine task panicked (the run is then ended ERROR).
    pub(crate) async fn execute(
        &self,
        mut req: RunRequest,
        run: &mut RunView,
        with_steps: bool,
    ) -> Option<fdi_engine::RunOutcome> {
        // Without its steps the engine run is one window of a longer run: no total to estimate.
        req.options.estimate_rows = with_steps;
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = tokio::spawn(fdi_engine::run(req, tx));
        self.fold_events(rx, run, with_steps).await;
        match engine.await {
            Ok(o) => {
                crate::run_end::record_moved(&run.task_id, &o);
                Some(o)
            }
            Err(e) => {
                run.fail(StepCode::ABNORMAL, &format!("the run panicked: {e}"));
                None
            }
        }
    }

    /// Fold a run's events into `run` until their sender is gone, saving progress.
    pub(crate) async fn fold_events(
        &self,
        mut rx: mpsc::UnboundedReceiver<fdi_engine::RunEvent>,
        run: &mut RunView,
        with_steps: bool,
    ) {
        let mut last_save = std::time::Instant::now();
        let base = (
            run.data_count,
            run.dirty_data_count,
            run.data_bytes,
            run.read_count,
        );
        // The run's record is written at most every 500 ms while it runs (and once at its end):
        // short runs cost the store two writes, long runs still show live progress, and what a
        // quiet stream reported last is saved within 500 ms too.
        const SAVE_EVERY: Duration = Duration::from_millis(500);
        let mut unsaved = false;
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => ev,
                    None => break,
                },
                _ = tokio::time::sleep(SAVE_EVERY.saturating_sub(last_save.elapsed())), if unsaved => {
                    last_save = std::time::Instant::now();
                    unsaved = false;
                    if let Err(e) = self.monitor.save(run).await {
                        tracing::warn!(task_id = run.task_id, run_id = run.id, error = %e, "cannot record run progress");
                    }
                    continue;
                }
            };
            unsaved = true;
            if with_steps {
                run.apply(ev);
            } else if let fdi_engine::RunEvent::Progress {
                rows_read,
                rows_written,
                dirty_rows,
                bytes_written,
                ..
            } = ev
            {
                run.data_count = base.0 + rows_written;
                run.dirty_data_count = base.1 + dirty_rows;
                run.data_bytes = base.2 + bytes_written;
                // One window of a longer run: the window's estimate is no total of the run.
                run.note_progress(base.3 + rows_read, None, fdi_types::now_millis());
            }
            if last_save.elapsed() > SAVE_EVERY {
                last_save = std::time::Instant::now();
                unsaved = false;
                if let Err(e) = self.monitor.save(run).await {
                    tracing::warn!(task_id = run.task_id, run_id = run.id, error = %e, "cannot record run progress");
                }
            }
        }
    }

    // ---- heartbeat, recovery ----------------------------------------------------------------

    pub(crate) async fn heartbeat_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cfg.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stopped.cancelled() => return,
                _ = tick.tick() => {}
            }
            let has_local_runs = !self.active.lock().unwrap().is_empty();
            let renewed = if has_local_runs {
                self.store
                    .renew_claims(&self.cfg.node_id, self.lease_until())
                    .await
            } else {
                Ok(Vec::new())
            };
            match renewed {
                Ok(cancel) => {
                    let active = self.active.lock().unwrap();
                    for task_id in cancel {
                        if let Some(a) = active.get(&task_id) {
                            tracing::info!(
                                task_id,
                                run_id = a.run_id,
                                "terminate requested through the store"
                            );
                            a.cancel.cancel();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew run leases"),
            }
            if !self.shutdown.is_cancelled()
                && let Err(e) = self.recover(false).await
            {
                tracing::warn!(error = %e, "orphan sweep failed");
            }
        }
    }

    /// End runs whose node is gone: claims whose lease ran out, or, at startup, this node's own
    /// claims from its previous life. (Every active run has a claim: it is taken before the run
    /// is recorded and dropped after its end is.)
    pub(crate) async fn recover(&self, at_startup: bool) -> Result<usize> {
        let now = fdi_types::now_millis();
        let mine = at_startup.then_some(self.cfg.node_id.as_str());
        let mut n = 0;
        for c in self.store.orphaned_claims(now, mine).await? {
            if !at_startup && self.active.lock().unwrap().contains_key(&c.task_id) {
                continue; // our own run whose lease lapsed during a stall: the next renew fixes it
            }
            if self.end_orphan(&c.task_id, &c.run_id).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// End an orphaned run ERROR (915) and drop its claim; true when this call ended it.
    async fn end_orphan(&self, task_id: &str, run_id: &str) -> Result<bool> {
        let ended = self.monitor.end_abnormally(run_id, ABNORMAL_REMARK).await?;
        self.store.release_claim(task_id, run_id).await?;
        if ended {
            fdi_metrics::run_recorded(task_id, ExecuteStatus::Error.as_str());
            tracing::warn!(task_id, run_id, "run ended ERROR (915): its node stopped");
        }
        Ok(ended)
    }

    /// A dispatch that could not start a run (task unreadable, datasource gone...): a run that
    /// ends ERROR with step 913 and the cause, so the failure shows in the monitor log.
    pub(crate) async fn record_dispatch_failure(
        &self,
        task_id: &str,
        trigger: Trigger,
        dispatch_ms: i64,
        cause: &str,
    ) -> Result<()> {
        let mut run = RunView::starting(
            task_id,
            &fdi_types::new_id(),
            trigger,
            dispatch_ms,
            &self.cfg.node_id,
        );
        run.fail(
            StepCode::DISPATCH_FAILED,
            &format!("dispatch failed: {cause}"),
        );
        self.monitor.create(&mut run).await?;
        fdi_metrics::run_recorded(task_id, run.execute_status.as_str());
        tracing::warn!(
            task_id,
            run_id = run.id,
            cause,
            "dispatch failed: run recorded ERROR (913)"
        );
        Ok(())
    }

    // ---- plan fires -------------------------------------------------------------------------

    pub(crate) async fn plan_loop(self: Arc<Self>) {
        // Since when the store has been unreachable, and the last outage it came back from: the
        // fires it held up say so in their runs' logs.
        let mut down_since: Option<i64> = None;
        let mut last_outage: Option<Outage> = None;
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            let now = fdi_types::now_millis();
            match self.store.due_plans(now, 1000).await {
                Err(e) if e.is_unavailable() => {
                    if down_since.is_none() {
                        tracing::warn!(error = %e, "the store is unreachable: plan fires wait until it is back");
                    }
                    down_since.get_or_insert(now);
                }
                Ok(due) => {
                    if let Some(since) = down_since.take() {
                        tracing::info!(
                            down_ms = now - since,
                            "the store is back: fires held up meanwhile go now"
                        );
                        last_outage = Some(Outage { since, until: now });
                    }
                    // Fires of different plans are independent (each owns its instant through
                    // the compare-and-set): dispatch them concurrently, a bounded number at once.
                    let mut fires = tokio::task::JoinSet::new();
                    for row in due {
                        while fires.len() >= 32 {
                            fires.join_next().await;
                        }
                        let this = Arc::clone(&self);
                        fires.spawn(async move {
                            if let Err(e) = this.fire(row, now, last_outage).await {
                                tracing::warn!(error = %e, "plan fire failed");
                            }
                        });
                    }
                    while fires.join_next().await.is_some() {}
                }
                Err(e) => tracing::warn!(error = %e, "cannot read due plans"),
            }
            let poll = self.cfg.plan_poll.as_millis() as i64;
            let now = fdi_types::now_millis();
            let wait = match self.store.earliest_fire().await {
                Ok(Some(t)) => (t - now).clamp(0, poll),
                _ => poll,
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = self.plans_changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            }
        }
    }

    /// Own the fire at `row.next_fire` (compare-and-set in the store) and dispatch it.
    async fn fire(self: &Arc<Self>, row: PlanRow, now: i64, outage: Option<Outage>) -> Result<()> {
        let Some(planned) = row.next_fire else {
            return Ok(());
        };
        let doc: PlanDoc = serde_json::from_str(&row.body).map_err(fdi_store::StoreError::from)?;
        let timing = doc.timing(self.cfg.time_zone)?;
        let mut next = plans::next_fire(&timing, planned);
        // Missed more than one instant (the server was down): one fire for the whole window.
        let mut last_missed = planned;
        let mut missed = 0u32;
        while let Some(n) = next
            && n <= now
        {
            missed += 1;
            last_missed = n;
            next = plans::next_fire(&timing, n);
            if missed > 100_000 {
                next = plans::next_fire(&timing, now);
                break;
            }
        }
        if !self
            .store
            .advance_plan(&row.dispatch_id, planned, next)
            .await?
        {
            return Ok(()); // another node owns this fire, or the task was stopped meanwhile
        }
        // Held up by a store outage: the planned instant came while the store was unreachable.
        let held_up = outage
            .filter(|o| planned < o.until && planned + self.cfg.plan_poll.as_millis() as i64 >= o.since)
            .map(|o| {
                format!(
                    "the metadata store was unreachable from {} to {}: {} planned fire(s) from {} to {} {}",
                    utc(o.since),
                    utc(o.until),
                    missed + 1,
                    utc(planned),
                    utc(last_missed),
                    if doc.misfire_policy == MisfirePolicy::DoNothing {
                        "were skipped (misfire policy DO_NOTHING)"
                    } else {
                        "went as this one run once it was back"
                    }
                )
            });
        if missed > 0 && doc.misfire_policy == MisfirePolicy::DoNothing {
            tracing::info!(
                task_id = row.task_id,
                missed = missed + 1,
                "misfire: skipped (policy DO_NOTHING)"
            );
            if let Some(why) = held_up {
                self.record_dispatch_failure(&row.task_id, Trigger::Plan, last_missed, &why)
                    .await?;
            }
            return Ok(());
        }
        let dispatch_ms = last_missed;
        let task = match self.resolver.resolve(&row.task_id).await {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(()),
            Err(e) => {
                self.record_dispatch_failure(&row.task_id, Trigger::Plan, dispatch_ms, &e.message)
                    .await?;
                return Ok(());
            }
        };
        match self.launch(task, Trigger::Plan, dispatch_ms, held_up).await {
            Ok(Launch::Started(run_id)) => {
                plans::record_dispatch_lag(dispatch_ms);
                tracing::info!(
                    task_id = row.task_id,
                    run_id,
                    planned = dispatch_ms,
                    lag_ms = fdi_types::now_millis() - dispatch_ms,
                    "plan fired"
                );
            }
            Ok(Launch::Busy(running)) => {
                let rejected = self
                    .monitor
                    .record_rejected(&row.task_id, dispatch_ms, &self.cfg.node_id, &running)
                    .await?;
                fdi_metrics::run_recorded(&row.task_id, rejected.execute_status.as_str());
                tracing::info!(
                    task_id = row.task_id,
                    run_id = rejected.id,
                    running,
                    "plan fire rejected: previous run has not ended (914)"
                );
            }
            Err(e) => {
                self.record_dispatch_failure(
                    &row.task_id,
                    Trigger::Plan,
                    dispatch_ms,
                    &e.to_string(),
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// A time the store could not be reached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outage {
    pub since: i64,
    pub until: i64,
}

/// An instant for a remark: `2026-12-01T18:51:00.000Z`.
/// Publish the run-end message; a failure is said in the run's remarks (the run keeps its
/// outcome).
async fn announce_run_end(target: &fdi_catalog::RunEndTarget, run: &mut RunView) {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let sent = tokio::time::timeout(TIMEOUT, crate::run_end::publish(target, run)).await;
    let failure = match sent {
        Ok(Ok(())) => {
            tracing::info!(topic = target.topic, "run-end message published");
            return;
        }
        Ok(Err(e)) => e.message,
        Err(_) => format!("no confirmation from the broker in {TIMEOUT:?}"),
    };
    tracing::warn!(topic = target.topic, cause = %failure, "run-end message not published");
    run.remarks = format!(
        "{} (the run-end message to topic {} was not published: {failure})",
        run.remarks, target.topic
    );
}

fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

const ABNORMAL_REMARK: &str = "task ran abnormally: the server running it stopped during the run; nothing was committed after its last commit";
