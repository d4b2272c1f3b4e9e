//! The in-process runner: the state machine of `infra/` executed with the
//! same steps, in the same order, with the same retry policies. Plan, then
//! each chunk's reservation in plan order (the Map's MaxConcurrency is 1),
//! then finalize (the ledger), then announce (status and event); any
//! conflict, fatal error or exhausted retries before the announcement go
//! to compensate, which fails the job unless the ledger holds its
//! clearance, in which case the job is announced instead. A failing
//! announcement is retried, never compensated.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clearance_core::batch::{
    failure_of, BatchLedger, BatchSteps, Compensation, JobStarter, JobState, JobStore, RetryPolicy,
    StepError, ANNOUNCE_RETRY, RETRY,
};
use clearance_core::outbox::{EventOutbox, EventPublisher};
use clearance_core::ports::{BackendError, ScopeMirror};
use uuid::Uuid;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded(Uuid),
    /// The clearance is posted; its announcement (the status write) failed
    /// through its retries (its event waits in the outbox either way). A new run announces it (Step Functions: a
    /// redrive of the `NotAnnounced` execution).
    PostedNotAnnounced(Uuid),
    Failed(StepError),
    /// The job had already ended (a duplicate start): nothing ran.
    AlreadyEnded(JobState),
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Runs `step` as a Task state with `Retry` on [`StepError::Retryable`]:
/// exponential backoff, bounded attempts; other errors are not retried.
async fn with_retry<T, F, Fut>(policy: RetryPolicy, mut step: F) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StepError>>,
{
    let mut wait = policy.interval_secs;
    let mut attempt = 1;
    loop {
        match step().await {
            Err(StepError::Retryable(why)) if attempt < policy.max_attempts => {
                tracing::warn!(attempt, why, "retrying a batch step");
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                wait *= policy.backoff_rate;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The retry policies of a run: the steps', and the announcement's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunPolicy {
    pub steps: RetryPolicy,
    pub announce: RetryPolicy,
}

/// The state machine's policies (`infra/`; a test keeps them equal).
pub const PRODUCTION: RunPolicy = RunPolicy { steps: RETRY, announce: ANNOUNCE_RETRY };

/// Runs the workflow of job `job_id` to its end.
pub async fn run_job<J, B, E, M>(
    steps: &BatchSteps<J, B, E, M>,
    job_id: Uuid,
    policy: RunPolicy,
) -> RunOutcome
where
    J: JobStore,
    B: BatchLedger + EventOutbox,
    E: EventPublisher,
    M: ScopeMirror,
{
    match steps.jobs.status(job_id).await {
        Ok(Some(status)) if status.state != JobState::Running => {
            return RunOutcome::AlreadyEnded(status.state)
        }
        _ => {}
    }
    let post = async {
        let chunks = with_retry(policy.steps, || steps.plan(job_id)).await?;
        for k in chunks {
            with_retry(policy.steps, || steps.reserve(job_id, k, now_secs())).await?;
        }
        with_retry(policy.steps, || steps.finalize(job_id)).await
    };
    let clearance_id = match post.await {
        Ok(clearance_id) => clearance_id,
        Err(err) => {
            let failure = failure_of(&err);
            match with_retry(policy.steps, || steps.compensate(job_id, &failure, now_secs())).await {
                Ok(Compensation::Posted(clearance_id)) => clearance_id,
                Ok(Compensation::Released(_)) => return RunOutcome::Failed(err),
                Err(e) => {
                    // Step Functions would leave the execution failed for an
                    // operator to redrive; the job stays `running` with
                    // pending rows until then, and its status says so.
                    tracing::error!(%job_id, error = %e, "compensation failed");
                    return RunOutcome::Failed(err);
                }
            }
        }
    };
    match with_retry(policy.announce, || steps.announce(job_id, now_secs())).await {
        Ok(clearance_id) => RunOutcome::Succeeded(clearance_id),
        Err(e) => {
            tracing::error!(%job_id, %clearance_id, error = %e, "posted, not announced: a new run announces it");
            RunOutcome::PostedNotAnnounced(clearance_id)
        }
    }
}

/// Starts jobs on the local runtime with the production retry policy. Like
/// an execution name, a job id runs once at a time: a second start while
/// it runs is a no-op.
pub struct LocalRunner<J, B, E, M> {
    steps: Arc<BatchSteps<J, B, E, M>>,
    running: Arc<Mutex<HashSet<Uuid>>>,
}

impl<J, B, E, M> Clone for LocalRunner<J, B, E, M> {
    fn clone(&self) -> Self {
        Self { steps: Arc::clone(&self.steps), running: Arc::clone(&self.running) }
    }
}

impl<J, B, E, M> LocalRunner<J, B, E, M>
where
    J: JobStore + 'static,
    B: BatchLedger + EventOutbox + 'static,
    E: EventPublisher + 'static,
    M: ScopeMirror + 'static,
{
    pub fn new(steps: Arc<BatchSteps<J, B, E, M>>) -> Self {
        Self { steps, running: Arc::default() }
    }
}

impl<J, B, E, M> JobStarter for LocalRunner<J, B, E, M>
where
    J: JobStore + 'static,
    B: BatchLedger + EventOutbox + 'static,
    E: EventPublisher + 'static,
    M: ScopeMirror + 'static,
{
    async fn start(&self, job_id: Uuid) -> Result<(), BackendError> {
        if !self.running.lock().map_err(|_| BackendError::new("runner state poisoned"))?.insert(job_id) {
            return Ok(());
        }
        let (steps, running) = (Arc::clone(&self.steps), Arc::clone(&self.running));
        tokio::spawn(async move {
            let outcome = run_job(&steps, job_id, PRODUCTION).await;
            tracing::info!(%job_id, ?outcome, "batch job ended");
            if let Ok(mut running) = running.lock() {
                running.remove(&job_id);
            }
        });
        Ok(())
    }
}
