//! Batch clearing end to end against the real PostgreSQL and DynamoDB and
//! EventBridge (moto): a 100K-row job, retries, re-delivery, a conflict and
//! its compensation, a crash and its re-run, two jobs racing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use clearance_core::batch::{
    BatchLedger, BatchSteps, JobScope, JobStarter, JobState, JobStore, Release, StepError,
};
use clearance_core::clearance::{Check, ClearanceHeader, Posting, SnapshotRowRef};
use clearance_core::outbox::{ClearanceEvent, EventKind, EventOutbox};
use clearance_core::ports::{BackendError, LedgerWriteError, Posted};
use clearance_core::write::WriteConfig;
use clearance_dynamo::{DynamoJobStore, DynamoScopeMirror};
use clearance_pg::batch::PgBatchLedger;
use clearance_tests::write_api::{clear, job_when_done, search, send, Reply, Row, Snapshot, Stack};
use clearance_workflow::{run_job, EventBridgePublisher, RunOutcome, PRODUCTION};
use http::Method;
use rust_decimal::Decimal;
use uuid::Uuid;

const ALL_USD: &str = r#"{"treaty_ids": ["TR-0001"], "period_from": "2021-01", "period_to": "2025-12", "currency": "USD", "status": "open"}"#;

/// Records the jobs it is asked to start and runs none: the test drives them.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Uuid>>>);

impl JobStarter for Recorder {
    async fn start(&self, job_id: Uuid) -> Result<(), BackendError> {
        self.0.lock().map_err(|_| BackendError::new("poisoned"))?.push(job_id);
        Ok(())
    }
}

/// The real ledger, with one reservation failing once with a retryable
/// error (a dropped connection, say) before it is let through.
struct FlakyLedger {
    inner: PgBatchLedger,
    fail_call: u32,
    calls: AtomicU32,
}

impl BatchLedger for FlakyLedger {
    async fn reserve(&self, scope: &JobScope, rows: &[SnapshotRowRef]) -> Result<u64, LedgerWriteError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_call {
            return Err(LedgerWriteError::Backend(BackendError::new("injected: connection reset")));
        }
        self.inner.reserve(scope, rows).await
    }

    async fn finalize(
        &self,
        scope: &JobScope,
        row_count: u64,
        check: &Check,
        posting: &Posting,
        header: &ClearanceHeader,
    ) -> Result<Posted, LedgerWriteError> {
        self.inner.finalize(scope, row_count, check, posting, header).await
    }

    async fn release(&self, scope: &JobScope, failed: &ClearanceEvent) -> Result<Release, LedgerWriteError> {
        self.inner.release(scope, failed).await
    }
}

impl EventOutbox for FlakyLedger {
    async fn claim(
        &self,
        only: Option<Uuid>,
        limit: u32,
        claim_secs: u32,
    ) -> Result<Vec<ClearanceEvent>, BackendError> {
        self.inner.claim(only, limit, claim_secs).await
    }

    async fn settle(&self, published: &[Uuid], unpublished: &[Uuid]) -> Result<(), BackendError> {
        self.inner.settle(published, unpublished).await
    }
}

type TestSteps<B> = BatchSteps<DynamoJobStore, B, EventBridgePublisher, DynamoScopeMirror>;

fn steps<B: BatchLedger>(stack: &Stack, ledger: B) -> TestSteps<B> {
    BatchSteps {
        jobs: DynamoJobStore::new(stack.table.client.clone(), stack.table.name.clone()),
        ledger,
        events: EventBridgePublisher::new(stack.events.clone(), stack.bus.clone()),
        mirror: DynamoScopeMirror::new(stack.table.client.clone(), stack.table.name.clone()),
    }
}

/// POST /v1/clearances of every row of `snap` but `except`, against a
/// check for exactly their total.
async fn submit<R: JobStarter>(
    apis: &clearance_tests::write_api::LocalStack<R>,
    operator: &str,
    snap: &Snapshot,
    except: &[&Row],
    key: &str,
) -> Reply {
    let skip: BTreeSet<&str> = except.iter().map(|r| r.id.as_str()).collect();
    let total: Decimal = snap.rows.iter().filter(|r| !skip.contains(r.id.as_str())).map(|r| r.amount).sum();
    let (amount, allow) = if total > Decimal::ZERO { (total, false) } else { (Decimal::ONE, true) };
    let body = serde_json::json!({
        "snapshot_id": snap.id,
        "version_token": snap.token,
        "selection": { "all": true, "except": skip },
        "check": { "number": "CHK-BATCH", "amount": amount.to_string(), "currency": "USD", "received_on": "2024-07-01" },
        "allow_difference": allow,
        "overpayment_to_unapplied": allow,
    })
    .to_string();
    send(&apis.write, Method::POST, "/v1/clearances", body.as_bytes(), Some((operator, "*")), Some(key)).await
}

fn job_id(reply: &Reply) -> anyhow::Result<Uuid> {
    anyhow::ensure!(reply.status == 202, "expected a job: {} {}", reply.status, reply.json);
    Ok(Uuid::try_parse(reply.json["job_id"].as_str().unwrap_or_default())?)
}

/// Every row of the job cleared exactly once, by its clearance, and the
/// ledger adds up.
async fn assert_cleared_once(stack: &Stack, clearance_id: &str, rows: i64) -> anyhow::Result<()> {
    let cleared = stack
        .count(&format!(
            "SELECT count(*) FROM transactions WHERE status = 'cleared' AND clearance_id = '{clearance_id}'"
        ))
        .await?;
    assert_eq!(cleared, rows, "every row of the job cleared");
    let lines = stack
        .count(&format!("SELECT count(*) FROM clearance_lines WHERE clearance_id = '{clearance_id}'"))
        .await?;
    assert_eq!(lines, rows, "one line per row");
    // No row cleared twice or left pending, the clearance adds up and its
    // journal balances.
    for (invariant, broken) in clearance_pg::audit::violations(&stack.db.owner).await? {
        assert_eq!(broken, 0, "{invariant}");
    }
    Ok(())
}

#[tokio::test]
async fn a_100k_row_batch_clears_every_row_exactly_once() -> anyhow::Result<()> {
    let stack = Stack::new(400_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let snap = search(&apis, "op-a", ALL_USD).await?;
    assert!(snap.rows.len() >= 100_000, "the heavy treaty's USD rows: {}", snap.rows.len());
    let started = submit(&apis, "op-a", &snap, &[], "batch-1").await;
    let id = job_id(&started)?;
    assert_eq!(started.json["state"], "running");
    assert_eq!(started.json["row_count"].as_u64(), Some(snap.rows.len() as u64));
    let chunks = started.json["chunks_total"].as_u64().unwrap_or(0);
    assert_eq!(chunks, snap.rows.len().div_ceil(5_000) as u64);

    // Poll as the grid would: bounded, cheap reads of the status item.
    let path = format!("/v1/jobs/{id}");
    let status = job_when_done(&apis, "op-a", &id.to_string()).await;
    assert_eq!(status["state"], "succeeded", "{status}");
    assert_eq!(status["chunks_done"].as_u64(), Some(chunks));
    let clearance_id = status["clearance_id"].as_str().unwrap_or_default().to_owned();
    assert_cleared_once(&stack, &clearance_id, snap.rows.len() as i64).await?;
    let record = send(
        &apis.write,
        Method::GET,
        &format!("/v1/clearances/{clearance_id}"),
        b"",
        Some(("op-a", "*")),
        None,
    )
    .await;
    assert_eq!((record.status, record.json["state"].as_str()), (200, Some("posted")));

    // The job is another operator's business only as far as 404.
    let foreign = send(&apis.jobs, Method::GET, &path, b"", Some(("op-b", "*")), None).await;
    assert_eq!((foreign.status, foreign.json["error"].as_str()), (404, Some("job_not_found")));
    // The same request again: the stored 202, no second job.
    let replay = submit(&apis, "op-a", &snap, &[], "batch-1").await;
    assert_eq!((replay.status, replay.replayed, &replay.body), (202, true, &started.body));
    stack.drop().await
}

#[tokio::test]
async fn a_chunk_failing_once_is_retried_and_a_redelivered_chunk_changes_nothing() -> anyhow::Result<()> {
    let stack = Stack::new(100_000).await?;
    let recorder = Recorder::default();
    let apis = stack.apis_with(WriteConfig::default(), |_| recorder.clone());
    let snap = search(&apis, "op-a", ALL_USD).await?;
    let id = job_id(&submit(&apis, "op-a", &snap, &[], "k").await)?;
    assert_eq!(recorder.0.lock().map(|j| j.clone()).unwrap_or_default(), vec![id], "started once");

    // Chunk 0 delivered twice: the second delivery reserves nothing and is
    // counted once.
    let pg = steps(&stack, PgBatchLedger::new(stack.pool.clone()));
    let first = pg.reserve(id, 0, 0).await?;
    assert_eq!(first, 5_000);
    let version = stack.count("SELECT version FROM scope_versions WHERE treaty_id = 'TR-0001'").await?;
    assert_eq!(pg.reserve(id, 0, 0).await?, 0, "a re-delivered chunk changes nothing");
    assert_eq!(stack.count("SELECT version FROM scope_versions WHERE treaty_id = 'TR-0001'").await?, version);
    let status = pg.jobs.status(id).await?.ok_or_else(|| anyhow::anyhow!("no job"))?;
    assert_eq!(status.chunks_done, 1);

    // The run: its second reservation fails once, is retried, and the job
    // succeeds with every row once.
    let flaky = steps(
        &stack,
        FlakyLedger { inner: PgBatchLedger::new(stack.pool.clone()), fail_call: 2, calls: AtomicU32::new(0) },
    );
    let outcome = run_job(&flaky, id, PRODUCTION).await;
    assert!(matches!(outcome, RunOutcome::Succeeded(_)), "{outcome:?}");
    assert_eq!(flaky.ledger.calls.load(Ordering::SeqCst), status.chunks_total + 1, "one retry, no more");
    let status = pg.jobs.status(id).await?.ok_or_else(|| anyhow::anyhow!("no job"))?;
    assert_eq!((status.state, status.chunks_done), (JobState::Succeeded, status.chunks_total));
    let clearance = status.clearance_id.map(|c| c.to_string()).unwrap_or_default();
    assert_cleared_once(&stack, &clearance, snap.rows.len() as i64).await?;
    // A duplicate start of an ended job runs nothing.
    assert_eq!(run_job(&pg, id, PRODUCTION).await, RunOutcome::AlreadyEnded(JobState::Succeeded));
    stack.drop().await
}

#[tokio::test]
async fn a_crash_between_reserve_and_finalize_then_a_rerun_ends_once() -> anyhow::Result<()> {
    let stack = Stack::new(100_000).await?;
    let apis = stack.apis_with(WriteConfig::default(), |_| Recorder::default());
    let snap = search(&apis, "op-a", ALL_USD).await?;
    let id = job_id(&submit(&apis, "op-a", &snap, &[], "k").await)?;
    let pg = steps(&stack, PgBatchLedger::new(stack.pool.clone()));
    // The first run reserves every chunk and dies before finalize.
    for k in pg.plan(id).await? {
        pg.reserve(id, k, 0).await?;
    }
    let pending = stack.count("SELECT count(*) FROM transactions WHERE status = 'pending'").await?;
    assert_eq!(pending, snap.rows.len() as i64);
    // The re-run: the same steps, the same single outcome.
    let outcome = run_job(&pg, id, PRODUCTION).await;
    let RunOutcome::Succeeded(clearance) = outcome else { panic!("{outcome:?}") };
    assert_cleared_once(&stack, &clearance.to_string(), snap.rows.len() as i64).await?;
    // Finalize delivered again: nothing more.
    assert_eq!(pg.finalize(id).await?, clearance);
    assert_eq!(stack.count("SELECT count(*) FROM clearances").await?, 1);
    stack.drop().await
}

#[tokio::test]
async fn a_conflict_releases_every_row_of_the_job_and_fails_it_with_the_conflicting_ids() -> anyhow::Result<()>
{
    let stack = Stack::new(100_000).await?;
    let apis = stack.apis_with(WriteConfig::default(), |_| Recorder::default());
    let snap = search(&apis, "op-a", ALL_USD).await?;
    let id = job_id(&submit(&apis, "op-a", &snap, &[], "k").await)?;
    let pg = steps(&stack, PgBatchLedger::new(stack.pool.clone()));
    // Chunks 0 and 1 reserved; then another operator clears a row of the
    // last chunk from their own snapshot.
    pg.reserve(id, 0, 0).await?;
    pg.reserve(id, 1, 0).await?;
    let other = search(&apis, "op-b", ALL_USD).await?;
    let victim = other
        .rows
        .iter()
        .rev()
        .find(|r| r.amount > Decimal::ZERO)
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    let cleared = clear(&apis, "op-b", &other, &[victim], "sync-1").await;
    assert_eq!(cleared.status, 201, "{}", cleared.json);

    let outcome = run_job(&pg, id, PRODUCTION).await;
    assert!(
        matches!(&outcome, RunOutcome::Failed(StepError::Conflict(ids)) if ids == &vec![Uuid::try_parse(&victim.id)?]),
        "{outcome:?}"
    );
    let status = pg.jobs.status(id).await?.ok_or_else(|| anyhow::anyhow!("no job"))?;
    assert_eq!(status.state, JobState::Failed);
    let error = status.error.ok_or_else(|| anyhow::anyhow!("no error"))?;
    assert_eq!(
        (error.code.as_str(), error.conflicting_ids.clone()),
        ("conflict", vec![Uuid::try_parse(&victim.id)?])
    );
    assert_eq!(
        stack.count("SELECT count(*) FROM transactions WHERE status = 'pending'").await?,
        0,
        "0 rows left pending"
    );
    let cleared_rows = stack.count("SELECT count(*) FROM transactions WHERE status = 'cleared'").await?;
    assert_eq!(cleared_rows, 1, "only the other operator's row is cleared");
    assert_eq!(stack.count("SELECT count(*) FROM clearances").await?, 1);
    let answer =
        send(&apis.jobs, Method::GET, &format!("/v1/jobs/{id}"), b"", Some(("op-a", "*")), None).await;
    assert_eq!(answer.json["state"], "failed");
    assert_eq!(answer.json["error"]["conflicting_ids"][0].as_str(), Some(victim.id.as_str()));
    stack.drop().await
}

#[tokio::test]
async fn two_jobs_on_overlapping_rows_exactly_one_succeeds() -> anyhow::Result<()> {
    let stack = Stack::new(100_000).await?;
    let apis = stack.apis_with(WriteConfig::default(), |_| Recorder::default());
    let a = search(&apis, "op-a", ALL_USD).await?;
    let b = search(&apis, "op-b", ALL_USD).await?;
    // A takes all but the first 3,000 rows, B all but the last 3,000: they
    // overlap in the middle.
    let skip_a: Vec<&Row> = a.rows.iter().take(3_000).collect();
    let skip_b: Vec<&Row> = b.rows.iter().rev().take(3_000).collect();
    let job_a = job_id(&submit(&apis, "op-a", &a, &skip_a, "ka").await)?;
    let job_b = job_id(&submit(&apis, "op-b", &b, &skip_b, "kb").await)?;
    let pg = steps(&stack, PgBatchLedger::new(stack.pool.clone()));
    let (ra, rb) = tokio::join!(run_job(&pg, job_a, PRODUCTION), run_job(&pg, job_b, PRODUCTION));
    let wins = [&ra, &rb].iter().filter(|r| matches!(r, RunOutcome::Succeeded(_))).count();
    assert_eq!(wins, 1, "exactly one succeeds: {ra:?} / {rb:?}");
    let (winner, rows) = match (&ra, &rb) {
        (RunOutcome::Succeeded(c), _) => (c, a.rows.len() - 3_000),
        (_, RunOutcome::Succeeded(c)) => (c, b.rows.len() - 3_000),
        _ => unreachable!(),
    };
    assert_cleared_once(&stack, &winner.to_string(), rows as i64).await?;
    assert_eq!(stack.count("SELECT count(*) FROM transactions WHERE status = 'cleared'").await?, rows as i64);
    stack.drop().await
}

#[tokio::test]
async fn posted_reversed_and_failed_events_reach_the_bus_with_stable_ids() -> anyhow::Result<()> {
    let stack = Stack::new(100_000).await?;
    let tap = clearance_tests::events::EventTap::attach(&stack.events, &stack.bus).await?;
    let apis = stack.apis_with(WriteConfig::default(), |_| Recorder::default());
    let snap = search(&apis, "op-a", ALL_USD).await?;
    let picked: Vec<&Row> = snap.rows.iter().filter(|r| r.amount > Decimal::ZERO).take(3).collect();
    let posted = clear(&apis, "op-a", &snap, &picked, "sync").await;
    assert_eq!(posted.status, 201, "{}", posted.json);
    let clearance = posted.json["clearance_id"].as_str().unwrap_or_default().to_owned();
    let reversal = format!("/v1/clearances/{clearance}/reversal");
    let reversed = send(
        &apis.write,
        Method::POST,
        &reversal,
        br#"{"reason": "bounced"}"#,
        Some(("op-b", "*")),
        Some("rev"),
    )
    .await;
    assert_eq!(reversed.status, 200, "{}", reversed.json);

    // A job that succeeds, with its finalize delivered twice; another that
    // conflicts with it and fails.
    let fresh = search(&apis, "op-a", ALL_USD).await?;
    let fresh_b = search(&apis, "op-b", ALL_USD).await?;
    let job = job_id(&submit(&apis, "op-a", &fresh, &[], "job").await)?;
    let other = job_id(&submit(&apis, "op-b", &fresh_b, &[], "job-b").await)?;
    let pg = steps(&stack, PgBatchLedger::new(stack.pool.clone()));
    let RunOutcome::Succeeded(job_clearance) = run_job(&pg, job, PRODUCTION).await else {
        panic!("the job failed")
    };
    pg.announce(job, 0).await?;
    assert!(matches!(run_job(&pg, other, PRODUCTION).await, RunOutcome::Failed(StepError::Conflict(_))));

    let events = tap.drain_within(5, 3).await?;
    let kinds: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e["detail-type"].as_str().unwrap_or_default().to_owned(),
                e["detail"]["clearance_id"].as_str().unwrap_or_default().to_owned(),
                e["detail"]["event_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let id = |kind: EventKind, c: &str| -> anyhow::Result<String> {
        Ok(ClearanceEvent::id_for(kind, Uuid::try_parse(c)?).to_string())
    };
    let job_clearance = job_clearance.to_string();
    let (posted, reversed) = (EventKind::ClearancePosted, EventKind::ClearanceReversed);
    let expected = [
        ("ClearancePosted".to_owned(), clearance.clone(), id(posted, &clearance)?),
        ("ClearanceReversed".to_owned(), clearance.clone(), id(reversed, &clearance)?),
        ("ClearancePosted".to_owned(), job_clearance.clone(), id(posted, &job_clearance)?),
    ];
    for event in &expected {
        assert!(kinds.contains(event), "{event:?} reached the bus: {kinds:?}");
    }
    let failed: Vec<&(String, String, String)> = kinds.iter().filter(|k| k.0 == "ClearanceFailed").collect();
    assert_eq!(failed.len(), 1, "{kinds:?}");
    // The announcement delivered twice publishes once: the outbox marks
    // what the bus took (were it published twice, the id is one).
    let distinct: BTreeSet<&String> = kinds.iter().map(|k| &k.2).collect();
    assert_eq!(distinct.len(), 4, "{kinds:?}");
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    stack.drop().await
}

/// The real job store, with the end of a job failing (DynamoDB refusing the
/// status write) while `fail_finish` is set.
struct FailingFinish {
    inner: DynamoJobStore,
    fail_finish: std::sync::atomic::AtomicBool,
}

impl JobStore for FailingFinish {
    async fn create(
        &self,
        status: &clearance_core::batch::JobStatus,
        plan: &clearance_core::batch::JobPlan,
        chunks: &[Vec<u8>],
        expires_at_secs: i64,
    ) -> Result<(), BackendError> {
        self.inner.create(status, plan, chunks, expires_at_secs).await
    }

    async fn status(&self, job_id: Uuid) -> Result<Option<clearance_core::batch::JobStatus>, BackendError> {
        self.inner.status(job_id).await
    }

    async fn plan(&self, job_id: Uuid) -> Result<Option<clearance_core::batch::JobPlan>, BackendError> {
        self.inner.plan(job_id).await
    }

    async fn chunk(&self, job_id: Uuid, k: u32) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.chunk(job_id, k).await
    }

    async fn chunk_done(&self, job_id: Uuid, k: u32, now_secs: i64) -> Result<(), BackendError> {
        self.inner.chunk_done(job_id, k, now_secs).await
    }

    async fn finish(
        &self,
        job_id: Uuid,
        state: JobState,
        clearance_id: Option<Uuid>,
        error: Option<&clearance_core::batch::JobFailure>,
        now_secs: i64,
    ) -> Result<(), BackendError> {
        if self.fail_finish.load(Ordering::SeqCst) {
            return Err(BackendError::new("injected: the status write was refused"));
        }
        self.inner.finish(job_id, state, clearance_id, error, now_secs).await
    }
}

/// A publisher on an EventBridge endpoint that refuses connections.
async fn refusing_bus(stack: &Stack) -> anyhow::Result<EventBridgePublisher> {
    let client = clearance_tests::events::refusing_client().await?;
    Ok(EventBridgePublisher::new(client, stack.bus.clone()))
}

/// The steps' policy, with a short announcement retry for the test's sake.
const QUICK: clearance_workflow::RunPolicy = clearance_workflow::RunPolicy {
    steps: clearance_core::batch::RETRY,
    announce: clearance_core::batch::RetryPolicy { interval_secs: 0.05, backoff_rate: 1.0, max_attempts: 2 },
};

#[tokio::test]
async fn a_bus_refusing_connections_after_finalize_leaves_the_job_posted_and_never_compensated(
) -> anyhow::Result<()> {
    let stack = Stack::new(100_000).await?;
    let tap = clearance_tests::events::EventTap::attach(&stack.events, &stack.bus).await?;
    let apis = stack.apis_with(WriteConfig::default(), |_| Recorder::default());
    let snap = search(&apis, "op-a", ALL_USD).await?;
    let id = job_id(&submit(&apis, "op-a", &snap, &[], "k").await)?;
    let down = BatchSteps {
        events: refusing_bus(&stack).await?,
        ..steps(&stack, PgBatchLedger::new(stack.pool.clone()))
    };

    // The in-process runner: posted and succeeded; the bus refusing fails
    // nothing, the event waits in the outbox.
    let outcome = run_job(&down, id, QUICK).await;
    let RunOutcome::Succeeded(clearance) = outcome else { panic!("{outcome:?}") };
    assert_cleared_once(&stack, &clearance.to_string(), snap.rows.len() as i64).await?;
    let status = down.jobs.status(id).await?.ok_or_else(|| anyhow::anyhow!("no job"))?;
    assert_eq!((status.state, status.clearance_id), (JobState::Succeeded, Some(clearance)));
    let unpublished = "SELECT count(*) FROM event_outbox WHERE published_at IS NULL";
    assert_eq!(stack.count(unpublished).await?, 1);

    // The batch function's entry point, as the state machine's Catch would
    // call it after a timeout past the commit: compensation finds the
    // clearance posted, releases nothing, fails nothing, and says so.
    let caught = serde_json::json!({
        "step": "compensate", "job_id": id,
        "error": { "Error": "States.Timeout", "Cause": "the task timed out" },
    });
    let answer = clearance_workflow::task::handle_task(&down, caught, 0).await?;
    assert_eq!(
        (answer["posted"].as_bool(), answer["clearance_id"].as_str()),
        (Some(true), Some(clearance.to_string().as_str()))
    );
    assert_cleared_once(&stack, &clearance.to_string(), snap.rows.len() as i64).await?;
    let status = down.jobs.status(id).await?.ok_or_else(|| anyhow::anyhow!("no job"))?;
    assert_eq!(status.state, JobState::Succeeded, "a posted job is never failed");

    // The scheduled drain, through the same entry point, while the bus
    // still refuses: nothing published, nothing lost.
    let drain = serde_json::json!({ "step": "drain_outbox" });
    let answer = clearance_workflow::task::handle_task(&down, drain.clone(), 0).await?;
    assert_eq!((answer["published"].as_u64(), answer["left"].as_u64()), (Some(0), Some(1)));
    // The bus back: the next scheduled drain publishes ClearancePosted
    // once, and no ClearanceFailed was ever sent.
    let up = steps(&stack, PgBatchLedger::new(stack.pool.clone()));
    let answer = clearance_workflow::task::handle_task(&up, drain.clone(), 0).await?;
    assert_eq!((answer["published"].as_u64(), answer["left"].as_u64()), (Some(1), Some(0)));
    let answer = clearance_workflow::task::handle_task(&up, drain, 0).await?;
    assert_eq!(answer["published"].as_u64(), Some(0), "published once");
    let events = clearance_tests::events::kinds_and_ids(&tap, 2).await?;
    let posted = ClearanceEvent::id_for(EventKind::ClearancePosted, clearance).to_string();
    assert_eq!(events, vec![("ClearancePosted".to_owned(), posted)]);
    assert_eq!(stack.count(unpublished).await?, 0);
    stack.drop().await
}

#[tokio::test]
async fn a_status_write_failing_after_finalize_never_fails_the_job() -> anyhow::Result<()> {
    let stack = Stack::new(100_000).await?;
    let tap = clearance_tests::events::EventTap::attach(&stack.events, &stack.bus).await?;
    let apis = stack.apis_with(WriteConfig::default(), |_| Recorder::default());
    let snap = search(&apis, "op-a", ALL_USD).await?;
    let id = job_id(&submit(&apis, "op-a", &snap, &[], "k").await)?;
    let pg = steps(&stack, PgBatchLedger::new(stack.pool.clone()));
    let failing = BatchSteps {
        jobs: FailingFinish { inner: pg.jobs.clone(), fail_finish: std::sync::atomic::AtomicBool::new(true) },
        ledger: PgBatchLedger::new(stack.pool.clone()),
        events: pg.events.clone(),
        mirror: pg.mirror.clone(),
    };

    // Through the entry point, step by step as the state machine calls it.
    let call = |payload: serde_json::Value| clearance_workflow::task::handle_task(&failing, payload, 0);
    let plan = call(serde_json::json!({ "step": "plan", "job_id": id })).await?;
    for k in plan["chunks"].as_array().into_iter().flatten() {
        call(serde_json::json!({ "step": "reserve", "job_id": id, "chunk": k })).await?;
    }
    let finalized = call(serde_json::json!({ "step": "finalize", "job_id": id })).await?;
    let clearance = Uuid::try_parse(finalized["clearance_id"].as_str().unwrap_or_default())?;
    let announced = call(serde_json::json!({ "step": "announce", "job_id": id })).await;
    assert!(
        matches!(&announced, Err(StepError::Retryable(_))),
        "{announced:?}: retried, not caught to compensate"
    );
    // Were compensation reached anyway (a timeout after the commit), it
    // checks the ledger first.
    let caught = serde_json::json!({
        "step": "compensate", "job_id": id,
        "error": { "Error": "Clearance.Retryable", "Cause": "status write refused" },
    });
    assert_eq!(call(caught).await?["posted"], true);
    assert_cleared_once(&stack, &clearance.to_string(), snap.rows.len() as i64).await?;

    // The in-process runner over the same failure: posted, not announced.
    assert_eq!(run_job(&failing, id, QUICK).await, RunOutcome::PostedNotAnnounced(clearance));
    // The store back: announced, succeeded, ClearancePosted once.
    failing.jobs.fail_finish.store(false, Ordering::SeqCst);
    assert_eq!(run_job(&failing, id, QUICK).await, RunOutcome::Succeeded(clearance));
    let status = pg.jobs.status(id).await?.ok_or_else(|| anyhow::anyhow!("no job"))?;
    assert_eq!((status.state, status.clearance_id), (JobState::Succeeded, Some(clearance)));
    let events = clearance_tests::events::kinds_and_ids(&tap, 2).await?;
    assert!(events.iter().all(|(kind, _)| kind == "ClearancePosted"), "{events:?}");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(stack.count("SELECT count(*) FROM clearances").await?, 1);
    stack.drop().await
}

#[tokio::test]
async fn a_job_key_answers_only_its_first_request_after_its_records_are_gone() -> anyhow::Result<()> {
    let stack = Stack::new(100_000).await?;
    let recorder = Recorder::default();
    let apis = stack.apis_with(WriteConfig::default(), |_| recorder.clone());
    let snap = search(&apis, "op-a", ALL_USD).await?;
    let id = job_id(&submit(&apis, "op-a", &snap, &[], "k").await)?;
    let pg = steps(&stack, PgBatchLedger::new(stack.pool.clone()));
    let RunOutcome::Succeeded(clearance) = run_job(&pg, id, PRODUCTION).await else {
        panic!("the job failed")
    };

    // The idempotency record (24 h) and the job's status item (7 days)
    // expire, deleted here. Another body under the key is still refused,
    // and no job is created or started for it.
    stack.delete_item("idem#k#op-a").await?;
    stack.delete_item(&format!("job#{id}")).await?;
    let other = submit(&apis, "op-a", &snap, &[&snap.rows[0]], "k").await;
    assert_eq!(
        (other.status, other.json["error"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{}",
        other.json
    );
    assert!(pg.jobs.status(id).await?.is_none(), "no job item made for it");

    // The same request is answered from the ledger: its job, succeeded,
    // with its clearance; no second job, no second start.
    let same = submit(&apis, "op-a", &snap, &[], "k").await;
    assert_eq!(job_id(&same)?, id);
    assert_eq!(
        (same.json["state"].as_str(), same.json["clearance_id"].as_str()),
        (Some("succeeded"), Some(clearance.to_string().as_str())),
        "{}",
        same.json
    );
    assert!(pg.jobs.status(id).await?.is_none(), "no job item made again");
    assert_eq!(recorder.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.as_slice(), [id]);
    assert_eq!(stack.count("SELECT count(*) FROM clearances").await?, 1);
    stack.drop().await
}
