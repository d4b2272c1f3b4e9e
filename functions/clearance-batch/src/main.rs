//! Lambda: the batch clearing steps. Step Functions invokes it with a Task
//! payload (`clearance_workflow::task::TaskInput`); a failure is reported
//! with its error name as the error type (`Clearance.Conflict`,
//! `Clearance.Retryable`, `Clearance.Fatal`), which the state machine's
//! Retry and Catch match verbatim.

use clearance_core::batch::{BatchSteps, StepError};
use clearance_dynamo::{DynamoJobStore, DynamoScopeMirror};
use clearance_http::config::BatchEnv;
use clearance_http::metrics::{self, Unit};
use clearance_lambda::{configured, database_pool, sdk_config};
use clearance_pg::batch::PgBatchLedger;
use clearance_workflow::task::{error_message, handle_task};
use clearance_workflow::EventBridgePublisher;
use lambda_http::lambda_runtime::{self, service_fn, Diagnostic, LambdaEvent};
use lambda_http::Error;

/// One step runs at a time in an instance; two connections cover the
/// statement and a concurrent status read.
const BATCH_CONNECTIONS_MAX: u32 = 2;

#[derive(Debug)]
struct NamedError(StepError);

impl From<NamedError> for Diagnostic {
    fn from(err: NamedError) -> Self {
        Diagnostic { error_type: err.0.name().to_owned(), error_message: error_message(&err.0) }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    clearance_lambda::init_logs();
    let env = configured(BatchEnv::from_env()).await;
    let pool = configured(database_pool(&env.database, BATCH_CONNECTIONS_MAX, &env.timeouts)).await;
    let sdk = sdk_config(&env.timeouts).await;
    let dynamo = clearance_dynamo::client(&sdk);
    let steps = BatchSteps {
        jobs: DynamoJobStore::new(dynamo.clone(), env.table.clone()),
        ledger: PgBatchLedger::new(pool),
        events: EventBridgePublisher::new(EventBridgePublisher::client(&sdk), env.event_bus),
        mirror: DynamoScopeMirror::new(dynamo, env.table),
    };
    let steps = &steps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let step = event.payload["step"].as_str().unwrap_or_default().to_owned();
        let job_id = event.payload["job_id"].as_str().unwrap_or_default().to_owned();
        let answer = handle_task(steps, event.payload, clearance_lambda::now_secs()).await;
        match &answer {
            Ok(result) => {
                tracing::info!(request_id = event.context.request_id, step, job_id, "batch step done");
                let duration = result["duration_secs"].as_f64();
                match (step.as_str(), duration) {
                    ("announce", Some(secs)) => metrics::emit(&[
                        ("JobsSucceeded", 1.0, Unit::Count),
                        ("JobDurationSeconds", secs, Unit::Seconds),
                    ]),
                    ("compensate", Some(secs)) => metrics::emit(&[
                        ("JobsFailed", 1.0, Unit::Count),
                        ("JobDurationSeconds", secs, Unit::Seconds),
                    ]),
                    _ => {}
                }
            }
            Err(e) => tracing::warn!(
                request_id = event.context.request_id,
                step,
                job_id,
                error = e.name(),
                "batch step failed"
            ),
        }
        answer.map_err(NamedError)
    }))
    .await
}
