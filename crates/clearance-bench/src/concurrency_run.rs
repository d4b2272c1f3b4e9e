//! The reliability run of `make bench`: 64 operators on one treaty's open
//! rows at once, through the router, each in a bounded loop of searches and
//! overlapping selections: synchronous clears (some replayed with their
//! idempotency key), batch jobs (above a lowered sync limit, run by the
//! in-process runner) and reversals of their own clearances, interleaved.
//! Two faults are injected while they run (`faults`): the event bus refuses
//! connections for a window, and every job's finalize reports a failure
//! after its commit (once, or on every attempt). At the end the ledger is
//! audited (`clearance_pg::audit`) and its counts compared with the
//! answers, the outbox drained as the schedule would, and the events counted
//! on a queue by id: any broken invariant, unexpected answer, mismatch,
//! lost event or failed job whose clearance is posted is a violation, and
//! there must be none.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clearance_core::batch::BatchSteps;
use clearance_core::write::WriteConfig;
use clearance_local::{LocalStack, Pools, StackConfig};
use clearance_pg::PoolLimits;
use clearance_workflow::LocalRunner;
use http::Method;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::faults::{BusOutage, FailAfterFinalize, QueueTap};
use crate::write_figures::call;

pub const OPERATORS: usize = 64;
/// Actions per operator.
pub const ROUNDS: usize = 6;
/// Above this many rows a clearance is a batch job in this run.
const SYNC_ROWS_MAX: usize = 100;
const JOB_WAIT_MAX: Duration = Duration::from_secs(120);
/// The bus refuses connections from this long after the operators start...
const BUS_DOWN_AFTER: Duration = Duration::from_secs(1);
/// ...for this long.
const BUS_DOWN_FOR: Duration = Duration::from_secs(6);
/// Rounds of the closing drain (the schedule's, run until the outbox is empty).
const CLOSING_DRAINS_MAX: u32 = 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConcurrencyFigures {
    pub operators: usize,
    pub rounds: usize,
    pub filter: String,
    pub wall_ms: f64,
    pub attempts: u64,
    pub commits: u64,
    pub conflicts: u64,
    pub sync: Outcomes,
    pub batch: Outcomes,
    pub reversal: Outcomes,
    /// Requests sent again with their idempotency key after a commit, and
    /// answered with the same clearance.
    pub replays: u64,
    /// Rounds that found too few open rows for their selection.
    pub skipped: u64,
    #[serde(default)]
    pub faults: FaultFigures,
    /// The clearance ids of the jobs answered `failed` (not written out).
    #[serde(skip)]
    pub failed_job_clearances: Vec<Uuid>,
    /// Each broken invariant, unexpected answer or count mismatch.
    pub violations: Vec<String>,
}

/// What the injected faults did, and what came out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FaultFigures {
    pub bus_down_ms: u64,
    /// Finalize failures reported after the commit.
    pub finalize_failures_after_commit: u64,
    /// Events the ledger committed in the run (its outbox).
    pub events_committed: u64,
    /// Published by the closing drain (left by the outage).
    pub events_left_for_the_schedule: u64,
    /// Distinct event ids that reached the queue.
    pub events_delivered: u64,
    pub events_lost: u64,
    /// Deliveries beyond the first of an id (at least once allows them).
    pub duplicate_deliveries: u64,
    /// Jobs answered `failed` whose clearance is in the ledger.
    pub jobs_failed_with_posted_clearance: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Outcomes {
    pub attempts: u64,
    pub commits: u64,
    pub conflicts: u64,
}

impl Outcomes {
    fn add(&mut self, other: Outcomes) {
        self.attempts += other.attempts;
        self.commits += other.commits;
        self.conflicts += other.conflicts;
    }
}

/// What one operator did.
#[derive(Default)]
struct Tally {
    sync: Outcomes,
    batch: Outcomes,
    reversal: Outcomes,
    replays: u64,
    skipped: u64,
    /// Clearance ids of the jobs answered `failed` (a conflict).
    failed_jobs: Vec<Uuid>,
    violations: Vec<String>,
}

/// xorshift64: deterministic per operator, no shared state.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or(serde_json::Value::Null)
}

/// The stack of the run: its batch jobs run by the in-process runner over
/// [`FailAfterFinalize`], its events published through `bus_endpoint`.
type Stack = LocalStack<
    LocalRunner<
        clearance_dynamo::DynamoJobStore,
        FailAfterFinalize,
        clearance_workflow::EventBridgePublisher,
        clearance_dynamo::DynamoScopeMirror,
    >,
>;

/// Runs the 64 operators on `filter` (one currency, open rows) under the
/// faults, and audits the ledger and the events. `database_url` is the
/// owner's; the stack connects each path as its role.
pub async fn run(database_url: &str, table: &str, filter: &str) -> anyhow::Result<ConcurrencyFigures> {
    let limits = PoolLimits { connections_max: 24, ..PoolLimits::default() };
    let pools = Pools::connect_as_roles(database_url, limits).await?;
    let owner = clearance_pg::connect(database_url, PoolLimits { connections_max: 2, ..limits }).await?;
    let sdk = clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await;
    let client = clearance_dynamo::client(&sdk);
    let events = clearance_workflow::EventBridgePublisher::client(&sdk);
    let bus = format!("{table}-bus");
    clearance_workflow::events::ensure_bus(&events, &bus).await?;
    let moto = std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE").context("AWS_ENDPOINT_URL_EVENTBRIDGE")?;
    let tap = QueueTap::attach(&events, &bus, &moto).await?;
    let outage = BusOutage::start(upstream(&moto)?).await?;
    let through_outage = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk).endpoint_url(outage.endpoint()).build(),
    );
    let config = StackConfig {
        write: WriteConfig { sync_rows_max: SYNC_ROWS_MAX, ..WriteConfig::default() },
        ..StackConfig::new(table, bus)
    };
    let faulty = Arc::new(std::sync::OnceLock::new());
    let stack: Stack = LocalStack::with_starter(pools.clone(), &client, &through_outage, &config, |steps| {
        let steps = Arc::new(BatchSteps {
            jobs: steps.jobs.clone(),
            ledger: FailAfterFinalize::new(steps.ledger.clone()),
            events: steps.events.clone(),
            mirror: steps.mirror.clone(),
        });
        let _ = faulty.set(Arc::clone(&steps));
        LocalRunner::new(steps)
    });
    let apis = Arc::new(stack);
    let before = ledger_counts(&owner).await?;
    let since: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&owner).await?;

    let started = Instant::now();
    let outage = Arc::new(outage);
    let window = tokio::spawn({
        let outage = Arc::clone(&outage);
        async move {
            tokio::time::sleep(BUS_DOWN_AFTER).await;
            outage.set_down(true);
            tokio::time::sleep(BUS_DOWN_FOR).await;
            outage.set_down(false);
        }
    });
    let mut figures = operators(&apis, filter).await?;
    figures.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    window.await.context("the outage window panicked")?;
    figures.faults.bus_down_ms = BUS_DOWN_FOR.as_millis() as u64;
    if let Some(steps) = faulty.get() {
        figures.faults.finalize_failures_after_commit = steps.ledger.injected.load(Ordering::Relaxed);
    }

    audit_ledger(&owner, before, &mut figures).await?;
    audit_events(&owner, &apis, &tap, since, &mut figures).await?;
    owner.close().await;
    pools.app.close().await;
    pools.reader.close().await;
    Ok(figures)
}

/// The socket address of a loopback endpoint URL (`http://127.0.0.1:port`).
fn upstream(endpoint: &str) -> anyhow::Result<std::net::SocketAddr> {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    host.parse().with_context(|| format!("{endpoint} is not http://<loopback ip>:<port>"))
}

/// The 64 operators at once; their tallies summed.
async fn operators(apis: &Arc<Stack>, filter: &str) -> anyhow::Result<ConcurrencyFigures> {
    // Idempotency keys of this run only: a rerun on the same ledger is new work.
    let run =
        format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis());
    let mut tasks = Vec::new();
    for op in 0..OPERATORS {
        let apis = Arc::clone(apis);
        let filter = filter.to_owned();
        let run = run.clone();
        tasks.push(tokio::spawn(async move { operator(&*apis, op, &filter, &run).await }));
    }
    let mut figures = ConcurrencyFigures {
        operators: OPERATORS,
        rounds: ROUNDS,
        filter: filter.to_owned(),
        ..ConcurrencyFigures::default()
    };
    let mut failed_jobs = Vec::new();
    for task in tasks {
        let tally = task.await.context("an operator task panicked")?;
        figures.sync.add(tally.sync);
        figures.batch.add(tally.batch);
        figures.reversal.add(tally.reversal);
        figures.replays += tally.replays;
        figures.skipped += tally.skipped;
        failed_jobs.extend(tally.failed_jobs);
        figures.violations.extend(tally.violations);
    }
    for o in [figures.sync, figures.batch, figures.reversal] {
        figures.attempts += o.attempts;
        figures.commits += o.commits;
        figures.conflicts += o.conflicts;
    }
    figures.failed_job_clearances = failed_jobs;
    Ok(figures)
}

/// The ledger against the answers, then against its invariants.
async fn audit_ledger(
    owner: &PgPool,
    before: (i64, i64),
    figures: &mut ConcurrencyFigures,
) -> anyhow::Result<()> {
    let after = ledger_counts(owner).await?;
    let posted = after.0 - before.0;
    let reversed = after.1 - before.1;
    let committed = (figures.sync.commits + figures.batch.commits) as i64;
    if posted != committed {
        figures
            .violations
            .push(format!("{posted} clearances in the ledger for {committed} commits answered"));
    }
    if reversed != figures.reversal.commits as i64 {
        figures
            .violations
            .push(format!("{reversed} reversals in the ledger for {} answered", figures.reversal.commits));
    }
    let failed_but_posted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM clearances WHERE clearance_id = ANY($1)")
            .bind(&figures.failed_job_clearances)
            .fetch_one(owner)
            .await?;
    figures.faults.jobs_failed_with_posted_clearance = failed_but_posted as u64;
    if failed_but_posted != 0 {
        figures
            .violations
            .push(format!("{failed_but_posted} jobs answered failed with their clearance posted"));
    }
    for (invariant, broken) in clearance_pg::audit::violations(owner).await? {
        if broken != 0 {
            figures.violations.push(format!("{invariant}: {broken}"));
        }
    }
    Ok(())
}

/// Every posting and reversal of the run has its event in the outbox; the
/// outbox drained (the schedule's work, with the bus back); every event on
/// the queue, counted by id.
async fn audit_events(
    owner: &PgPool,
    apis: &Stack,
    tap: &QueueTap,
    since: chrono::DateTime<chrono::Utc>,
    figures: &mut ConcurrencyFigures,
) -> anyhow::Result<()> {
    let (posted_without, reversed_without): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM clearances c WHERE c.created_at >= $1 AND NOT EXISTS (
                    SELECT 1 FROM event_outbox o WHERE o.clearance_id = c.clearance_id AND o.kind = 'ClearancePosted')),
                (SELECT count(*) FROM clearance_reversals r WHERE r.created_at >= $1 AND NOT EXISTS (
                    SELECT 1 FROM event_outbox o WHERE o.clearance_id = r.clearance_id AND o.kind = 'ClearanceReversed'))",
    )
    .bind(since)
    .fetch_one(owner)
    .await?;
    if posted_without + reversed_without != 0 {
        figures.violations.push(format!(
            "{posted_without} clearances and {reversed_without} reversals committed without their event"
        ));
    }
    for _ in 0..CLOSING_DRAINS_MAX {
        let drained = apis.steps.drain_outbox(clearance_workflow::task::SCHEDULED_DRAIN_ROUNDS).await?;
        figures.faults.events_left_for_the_schedule += drained.published;
        if drained.published == 0 && drained.left == 0 {
            break;
        }
    }
    let expected: HashSet<Uuid> =
        sqlx::query_scalar::<_, Uuid>("SELECT event_id FROM event_outbox WHERE created_at >= $1")
            .bind(since)
            .fetch_all(owner)
            .await?
            .into_iter()
            .collect();
    let seen = tap.count(&expected, 3, 600).await?;
    let faults = &mut figures.faults;
    faults.events_committed = expected.len() as u64;
    faults.events_delivered = expected.iter().filter(|id| seen.contains_key(id)).count() as u64;
    faults.events_lost = faults.events_committed - faults.events_delivered;
    faults.duplicate_deliveries = seen.values().map(|n| u64::from(n.saturating_sub(1))).sum();
    if faults.events_lost != 0 {
        figures.violations.push(format!("{} events committed never reached the queue", faults.events_lost));
    }
    Ok(())
}

async fn ledger_counts(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as("SELECT (SELECT count(*) FROM clearances), (SELECT count(*) FROM clearance_reversals)")
        .fetch_one(pool)
        .await?)
}

/// One operator's bounded loop.
async fn operator<A: clearance_http::Api>(apis: &A, op: usize, filter: &str, run: &str) -> Tally {
    let name = format!("bench-op-{op:02}");
    let mut dice = Dice((op as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut tally = Tally::default();
    let mut live: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let key = format!("{name}-{run}-{round}");
        let roll = dice.below(10);
        if roll < 2 && !live.is_empty() {
            let clearance = live.swap_remove(dice.below(live.len()));
            reverse(apis, &name, &clearance, &key, &mut tally).await;
            continue;
        }
        let (status, body, _) =
            call(apis, Method::POST, "/v1/searches", filter.as_bytes(), &name, None).await;
        if status != 200 {
            tally.violations.push(format!("{name}: search answered {status}"));
            continue;
        }
        let search = json(&body);
        // Batch selections cross the sync limit and come from the later
        // pages; sync ones stay under it and come from the first two. Each
        // kind overlaps with its own kind, and reversals reopen rows of both.
        let batch = roll >= 8;
        let pages = search["page_count"].as_u64().unwrap_or(1) as usize;
        let page = if batch && pages > 2 { 2 + dice.below(pages - 2) } else { dice.below(pages.min(2)) };
        let rows = if page == 0 {
            search["page"]["rows"].as_array().cloned().unwrap_or_default()
        } else {
            let path =
                format!("/v1/searches/{}/pages/{page}", search["snapshot_id"].as_str().unwrap_or_default());
            let (status, body, _) = call(apis, Method::GET, &path, b"", &name, None).await;
            if status != 200 {
                tally.violations.push(format!("{name}: page {page} answered {status}"));
                continue;
            }
            json(&body)["rows"].as_array().cloned().unwrap_or_default()
        };
        let size = if batch { SYNC_ROWS_MAX + 1 + dice.below(250) } else { 3 + dice.below(30) };
        if rows.len() < size {
            tally.skipped += 1;
            continue;
        }
        let start = dice.below(rows.len() - size + 1);
        let picked = &rows[start..start + size];
        let Ok(request) = clearance_body(&search, picked) else {
            tally.violations.push(format!("{name}: unreadable search answer"));
            continue;
        };
        clear(apis, &name, &request, &key, batch, &mut tally, &mut live).await;
    }
    tally
}

fn clearance_body(search: &serde_json::Value, picked: &[serde_json::Value]) -> anyhow::Result<Vec<u8>> {
    let mut total = Decimal::ZERO;
    for row in picked {
        total += row["amount"].as_str().context("amount")?.parse::<Decimal>()?;
    }
    let currency = picked.first().and_then(|r| r["currency"].as_str()).context("currency")?;
    let (amount, allow) = if total > Decimal::ZERO { (total, false) } else { (Decimal::ONE, true) };
    Ok(serde_json::json!({
        "snapshot_id": search["snapshot_id"],
        "version_token": search["version_token"],
        "selection": { "ids": picked.iter().map(|r| r["id"].clone()).collect::<Vec<_>>() },
        "check": { "number": "BENCH-64", "amount": amount.to_string(), "currency": currency, "received_on": "2024-06-30" },
        "allow_difference": allow,
        "overpayment_to_unapplied": allow,
    })
    .to_string()
    .into_bytes())
}

/// How a clearance ended, as its operator saw it.
enum Ended {
    Committed(String),
    Conflict,
    Broken(String),
}

/// One clearance: a sync one answered 201 (every other commit sent again,
/// as a client retrying a lost answer would), a batch one answered 202 and
/// followed to its end; a stale selection is a conflict, anything else a
/// violation.
async fn clear<A: clearance_http::Api>(
    apis: &A,
    name: &str,
    request: &[u8],
    key: &str,
    batch: bool,
    tally: &mut Tally,
    live: &mut Vec<String>,
) {
    let (status, body, _) = call(apis, Method::POST, "/v1/clearances", request, name, Some(key)).await;
    let answer = json(&body);
    let ended = match (status, answer["error"].as_str()) {
        (201, _) if !batch => {
            Ended::Committed(answer["clearance_id"].as_str().unwrap_or_default().to_owned())
        }
        (202, _) if batch => job_end(apis, name, &answer).await,
        (409, Some("stale_snapshot")) => Ended::Conflict,
        (other, code) => Ended::Broken(format!("{name}: clear answered {other} {code:?}")),
    };
    let outcomes = if batch { &mut tally.batch } else { &mut tally.sync };
    outcomes.attempts += 1;
    match ended {
        Ended::Committed(id) => {
            outcomes.commits += 1;
            if !batch && outcomes.commits % 2 == 0 {
                let (again, body, _) =
                    call(apis, Method::POST, "/v1/clearances", request, name, Some(key)).await;
                if again == 201 && json(&body)["clearance_id"].as_str() == Some(id.as_str()) {
                    tally.replays += 1;
                } else {
                    tally.violations.push(format!("{name}: replay of {key} answered {again}"));
                }
            }
            live.push(id);
        }
        Ended::Conflict => {
            outcomes.conflicts += 1;
            if batch {
                tally.failed_jobs.push(clearance_core::clearance::clearance_id_for(name, key));
            }
        }
        Ended::Broken(violation) => tally.violations.push(violation),
    }
}

/// Polls a started job (bounded) until it succeeds or fails.
async fn job_end<A: clearance_http::Api>(apis: &A, name: &str, started: &serde_json::Value) -> Ended {
    let path = format!("/v1/jobs/{}", started["job_id"].as_str().unwrap_or_default());
    let waited = Instant::now();
    while waited.elapsed() < JOB_WAIT_MAX {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (status, body, _) = call(apis, Method::GET, &path, b"", name, None).await;
        let job = json(&body);
        match (status, job["state"].as_str()) {
            (200, Some("succeeded")) => {
                return Ended::Committed(job["clearance_id"].as_str().unwrap_or_default().to_owned())
            }
            (200, Some("failed")) if job["error"]["code"] == "conflict" => return Ended::Conflict,
            (200, Some("failed")) => {
                return Ended::Broken(format!("{name}: job {path} failed: {}", job["error"]))
            }
            (200, _) => {}
            (other, _) => return Ended::Broken(format!("{name}: job status answered {other}")),
        }
    }
    Ended::Broken(format!("{name}: job {path} still running after {JOB_WAIT_MAX:?}"))
}

async fn reverse<A: clearance_http::Api>(
    apis: &A,
    name: &str,
    clearance: &str,
    key: &str,
    tally: &mut Tally,
) {
    tally.reversal.attempts += 1;
    let path = format!("/v1/clearances/{clearance}/reversal");
    let body = br#"{"reason": "bench: check returned"}"#;
    let (status, answer, _) = call(apis, Method::POST, &path, body, name, Some(key)).await;
    match status {
        200 => tally.reversal.commits += 1,
        other => {
            let code = json(&answer)["error"].as_str().map(str::to_owned);
            tally.violations.push(format!("{name}: reversal answered {other} {code:?}"))
        }
    }
}
