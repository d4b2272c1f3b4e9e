//! The batch function's one entry: a Step Functions Task payload in, the
//! step's result (or a named error) out. The state machine in `infra/`
//! sends exactly these payloads; `events/` holds one of each.

use clearance_core::batch::{BatchLedger, BatchSteps, Compensation, JobFailure, JobStore, StepError};
use clearance_core::outbox::{EventOutbox, EventPublisher};
use clearance_core::ports::ScopeMirror;
use serde::Deserialize;
use uuid::Uuid;

/// Rounds of the scheduled drain: up to 5,000 events an invocation, well
/// inside the batch function's timeout at a few ms a publish.
pub const SCHEDULED_DRAIN_ROUNDS: u32 = 50;

/// A Task payload: `{"step": "plan"|"reserve"|"finalize"|"announce"|"compensate",
/// "job_id": "...", "chunk": k, "error": {"Error", "Cause"}}`, or the
/// scheduled drain of the event outbox, `{"step": "drain_outbox"}` (sent by
/// an EventBridge schedule, not by the state machine).
#[derive(Debug, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum TaskInput {
    Plan {
        job_id: Uuid,
    },
    Reserve {
        job_id: Uuid,
        chunk: u32,
    },
    Finalize {
        job_id: Uuid,
    },
    Announce {
        job_id: Uuid,
    },
    /// `error` is what the state machine's Catch put at `$.error`.
    Compensate {
        job_id: Uuid,
        error: CaughtError,
    },
    DrainOutbox {},
}

/// A caught error as Step Functions passes it on.
#[derive(Debug, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl CaughtError {
    /// The job failure a caught error stands for: a Lambda error's Cause is
    /// `{"errorType", "errorMessage"}`, and our error messages are the
    /// failure as JSON (with the conflicting ids).
    pub fn failure(&self) -> JobFailure {
        let message = serde_json::from_str::<serde_json::Value>(&self.cause)
            .ok()
            .and_then(|v| v.get("errorMessage").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| self.cause.clone());
        serde_json::from_str::<JobFailure>(&message).unwrap_or(JobFailure {
            code: "failed".into(),
            message: format!("{}: {}", self.error, message.chars().take(500).collect::<String>()),
            conflicting_ids: Vec::new(),
        })
    }
}

/// The error message the batch function reports for `err`: the job failure
/// as JSON, so compensate gets the conflicting ids back from the Cause.
pub fn error_message(err: &StepError) -> String {
    serde_json::to_string(&clearance_core::batch::failure_of(err)).unwrap_or_else(|_| err.to_string())
}

/// Seconds from the job's creation to its end, for the duration metric.
async fn job_duration<J: JobStore, B, E, M>(steps: &BatchSteps<J, B, E, M>, job_id: Uuid) -> Option<i64> {
    let status = steps.jobs.status(job_id).await.ok().flatten()?;
    Some(status.updated_at_secs - status.created_at_secs)
}

/// Runs one Task.
///
/// # Errors
/// The step's [`StepError`]; [`StepError::Fatal`] for a payload that does
/// not parse.
pub async fn handle_task<J, B, E, M>(
    steps: &BatchSteps<J, B, E, M>,
    payload: serde_json::Value,
    now_secs: i64,
) -> Result<serde_json::Value, StepError>
where
    J: JobStore,
    B: BatchLedger + EventOutbox,
    E: EventPublisher,
    M: ScopeMirror,
{
    let input: TaskInput =
        serde_json::from_value(payload).map_err(|e| StepError::Fatal(format!("a Task payload: {e}")))?;
    Ok(match input {
        TaskInput::Plan { job_id } => {
            let chunks = steps.plan(job_id).await?;
            serde_json::json!({ "job_id": job_id, "chunks": chunks })
        }
        TaskInput::Reserve { job_id, chunk } => {
            let reserved = steps.reserve(job_id, chunk, now_secs).await?;
            serde_json::json!({ "job_id": job_id, "chunk": chunk, "reserved": reserved })
        }
        TaskInput::Finalize { job_id } => {
            let clearance_id = steps.finalize(job_id).await?;
            serde_json::json!({ "job_id": job_id, "clearance_id": clearance_id })
        }
        TaskInput::Announce { job_id } => {
            let clearance_id = steps.announce(job_id, now_secs).await?;
            let duration_secs = job_duration(steps, job_id).await;
            serde_json::json!({ "job_id": job_id, "clearance_id": clearance_id, "duration_secs": duration_secs })
        }
        TaskInput::DrainOutbox {} => {
            let drained = steps.drain_outbox(SCHEDULED_DRAIN_ROUNDS).await?;
            serde_json::json!({ "published": drained.published, "left": drained.left })
        }
        // `posted` routes the state machine: true goes on to Announce.
        TaskInput::Compensate { job_id, error } => {
            match steps.compensate(job_id, &error.failure(), now_secs).await? {
                Compensation::Posted(clearance_id) => {
                    serde_json::json!({ "job_id": job_id, "posted": true, "clearance_id": clearance_id })
                }
                Compensation::Released(released) => {
                    let duration_secs = job_duration(steps, job_id).await;
                    serde_json::json!({
                        "job_id": job_id, "posted": false, "released": released, "duration_secs": duration_secs
                    })
                }
            }
        }
    })
}
