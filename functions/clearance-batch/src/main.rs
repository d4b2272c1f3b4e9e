//! Lambda: the batch clearing steps. Step Functions invokes it with a Task
//! payload (`clearance_workflow::task::TaskInput`); a failure is reported
//! with its error name as the error type (`Clearance.Conflict`,
//! `Clearance.Retryable`, `Clearance.Fatal`), which the state machine's
//! Retry and Catch match verbatim.

use clearance_core::batch::{BatchSteps, StepError};
use clearance_dynamo::{DynamoJobStore, DynamoScopeMirror};
use clearance_http::metrics::{self, Unit};
use clearance_pg::batch::PgBatchLedger;
use clearance_pg::PoolLimits;
use clearance_workflow::task::{error_message, handle_task};
use clearance_workflow::EventBridgePublisher;
use lambda_http::lambda_runtime::{self, service_fn, Diagnostic, LambdaEvent};
use lambda_http::Error;

#[derive(Debug)]
struct NamedError(StepError);

impl From<NamedError> for Diagnostic {
    fn from(err: NamedError) -> Self {
        Diagnostic { error_type: err.0.name().to_owned(), error_message: error_message(&err.0) }
    }
}

fn var(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| Error::from(format!("configuration: {name} is not set")))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    clearance_lambda::init_logs();
    let database_url = var("CLEARANCE_APP_DATABASE_URL").or_else(|_| var("DATABASE_URL"))?;
    let table = var("CLEARANCE_TABLE")?;
    let bus = var("CLEARANCE_EVENT_BUS")?;
    let pool = clearance_pg::connect_lazy(
        &database_url,
        PoolLimits { connections_max: 2, ..PoolLimits::default() },
    )?;
    let dynamo = clearance_dynamo::client_from_env().await;
    let steps = BatchSteps {
        jobs: DynamoJobStore::new(dynamo.clone(), table.clone()),
        ledger: PgBatchLedger::new(pool),
        events: EventBridgePublisher::new(EventBridgePublisher::client_from_env().await, bus),
        mirror: DynamoScopeMirror::new(dynamo, table),
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
                    ("finalize", Some(secs)) => metrics::emit(&[
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
