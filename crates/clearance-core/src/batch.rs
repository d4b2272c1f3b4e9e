//! Batch clearing: a selection above the sync limit becomes a job, run as
//! an all-or-nothing workflow of idempotent steps (ADR 0006):
//!
//! 1. **plan**: the job's deterministic chunk plan (rows sorted by period
//!    and id, [`CHUNK_ROWS`] a chunk), written when the job is created;
//! 2. **reserve chunk** k: its rows open→pending for this job under the
//!    same row guard as the sync path; a re-delivered chunk changes nothing;
//! 3. **finalize**: pending→cleared, ledger and journal, scope version and
//!    the `ClearancePosted` event into the outbox, in one transaction;
//! 4. **announce**: job `succeeded`, the event out of the outbox (retried,
//!    never compensated: the money is posted);
//! 5. on a conflict or exhausted retries, **compensate**: unless the ledger
//!    holds the clearance, the job's pending rows open again with the
//!    `ClearanceFailed` event in the outbox, job `failed` with the
//!    conflicting ids.
//!
//! The same steps run under Step Functions (the ASL in `infra/`) and under
//! the in-process runner (`clearance-runner`), with the same retry policy.

use std::future::Future;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clearance::{Check, ClearanceHeader, Posting, SnapshotRowRef};
use crate::ids::TreatyId;
use crate::money::{Amount, Currency};
use crate::outbox::{publish_committed, ClearanceEvent, EventKind, EventOutbox, EventPublisher};
use crate::ports::{BackendError, LedgerWriteError, Posted, ScopeMirror};
use crate::snapshot::OperatorId;

/// Rows reserved per chunk: one transaction each.
pub const CHUNK_ROWS: usize = 5_000;

/// Error names the batch function reports and the state machine matches
/// verbatim (a test keeps `infra/` in step with these).
pub const ERROR_CONFLICT: &str = "Clearance.Conflict";
pub const ERROR_RETRYABLE: &str = "Clearance.Retryable";
pub const ERROR_FATAL: &str = "Clearance.Fatal";
pub const ERROR_NAMES: [&str; 3] = [ERROR_CONFLICT, ERROR_RETRYABLE, ERROR_FATAL];

/// Retries of a step failing with [`ERROR_RETRYABLE`], as AWS recommends:
/// exponential backoff, bounded attempts. The ASL's `Retry` says the same.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub interval_secs: f64,
    pub backoff_rate: f64,
    pub max_attempts: u32,
}

pub const RETRY: RetryPolicy = RetryPolicy { interval_secs: 1.0, backoff_rate: 2.0, max_attempts: 3 };
/// Retries of the announcement of a posted job (its status and its event):
/// longer, since the money is posted and only the telling is late; never a
/// reason to compensate. The ASL's Announce state says the same.
pub const ANNOUNCE_RETRY: RetryPolicy =
    RetryPolicy { interval_secs: 2.0, backoff_rate: 2.0, max_attempts: 6 };
/// Chunks reserved at once. One: chunks go in the plan's (period, id)
/// order, so of two jobs over overlapping rows the one that reaches a
/// shared row first always wins, and they can never both fail on each other.
pub const MAP_MAX_CONCURRENCY: u32 = 1;

/// How a step failed, by the name the state machine matches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Rows another clearance or job holds: the job cannot succeed.
    #[error("{} rows of the job are no longer open at the snapshot's version", .0.len())]
    Conflict(Vec<Uuid>),
    /// A backend hiccup: worth retrying.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Anything retrying cannot fix (a missing job, a broken invariant).
    #[error("fatal: {0}")]
    Fatal(String),
    /// Rows of the job are in closed accounting periods (first days,
    /// sorted; ADR 0015): the job cannot succeed until a closer reopens
    /// them. Fatal to the state machine.
    #[error(
        "rows of the job are in closed accounting periods: {}",
        .0.iter().map(|d| d.format("%Y-%m").to_string()).collect::<Vec<_>>().join(", ")
    )]
    PeriodClosed(Vec<NaiveDate>),
}

impl StepError {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Conflict(_) => ERROR_CONFLICT,
            Self::Retryable(_) => ERROR_RETRYABLE,
            Self::Fatal(_) | Self::PeriodClosed(_) => ERROR_FATAL,
        }
    }
}

impl From<BackendError> for StepError {
    fn from(err: BackendError) -> Self {
        Self::Retryable(err.to_string())
    }
}

impl From<LedgerWriteError> for StepError {
    fn from(err: LedgerWriteError) -> Self {
        match err {
            LedgerWriteError::StaleRows(ids) => Self::Conflict(ids),
            LedgerWriteError::PeriodClosed(days) => Self::PeriodClosed(days),
            LedgerWriteError::Backend(e) => Self::Retryable(e.to_string()),
            LedgerWriteError::Invariant(what) => Self::Fatal(format!("ledger invariant broken: {what}")),
            other => Self::Fatal(other.to_string()),
        }
    }
}

/// The id of the job a request starts: derived from the operator and the
/// idempotency key, like the clearance it will post.
pub fn job_id_for(operator: &str, idempotency_key: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6c1e_a7a0_5c1e_4a7e_9c1e_a7a0_0000_0003);
    Uuid::new_v5(&NAMESPACE, format!("job\n{operator}\n{idempotency_key}").as_bytes())
}

/// Everything a job posts, fixed when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPlan {
    pub job_id: Uuid,
    pub clearance_id: Uuid,
    pub owner: String,
    pub treaty_id: String,
    pub check_number: String,
    pub check_amount: String,
    pub currency: String,
    pub received_on: NaiveDate,
    pub allow_difference: bool,
    pub cleared_total: String,
    pub row_count: u64,
    pub chunks: u32,
    /// The first and last accounting period of the job's rows: statements
    /// scanning for the job's rows prune to these years.
    pub first_period: NaiveDate,
    pub last_period: NaiveDate,
    pub snapshot_id: String,
    pub snapshot_filter: String,
    pub version_token: String,
    pub idempotency_key: String,
    /// The fingerprint of the request that created the job (absent from
    /// plans written before fingerprints were kept).
    #[serde(default)]
    pub request_hash: String,
}

/// The rows a job touches: its treaty, its period bounds, its clearance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobScope {
    pub job_id: Uuid,
    pub treaty: TreatyId,
    pub clearance_id: Uuid,
    pub first_period: NaiveDate,
    pub last_period: NaiveDate,
}

impl JobPlan {
    /// # Errors
    /// [`StepError::Fatal`] when a stored value does not parse.
    pub fn scope(&self) -> Result<JobScope, StepError> {
        Ok(JobScope {
            job_id: self.job_id,
            treaty: TreatyId::parse(&self.treaty_id)
                .map_err(|e| StepError::Fatal(format!("job treaty: {e}")))?,
            clearance_id: self.clearance_id,
            first_period: self.first_period,
            last_period: self.last_period,
        })
    }

    /// The check, the posting and the header the finalize step writes.
    ///
    /// # Errors
    /// [`StepError::Fatal`] when a stored value does not parse.
    pub fn posting(&self) -> Result<(Check, Posting, ClearanceHeader), StepError> {
        let fatal = |what: &str| StepError::Fatal(format!("job plan: {what}"));
        let check = Check {
            number: self.check_number.clone(),
            amount: Amount::parse(&self.check_amount).map_err(|_| fatal("check amount"))?,
            currency: Currency::parse(&self.currency).map_err(|_| fatal("currency"))?,
            received_on: self.received_on,
        };
        let total = Amount::parse(&self.cleared_total).map_err(|_| fatal("cleared total"))?;
        let posting =
            Posting::for_total(&check, total, self.allow_difference).map_err(|_| fatal("posting"))?;
        let header = ClearanceHeader {
            clearance_id: self.clearance_id,
            operator_id: self.owner.clone(),
            snapshot_id: self.snapshot_id.clone(),
            snapshot_filter: self.snapshot_filter.clone(),
            version_token: self.version_token.clone(),
            idempotency_key: self.idempotency_key.clone(),
            request_hash: self.request_hash.clone(),
        };
        Ok((check, posting, header))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Running, Self::Succeeded, Self::Failed].into_iter().find(|s| s.as_str() == raw)
    }
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// `conflict` (rows moved: see `conflicting_ids`), `period_closed` (the
    /// message names the periods) or `failed`.
    pub code: String,
    pub message: String,
    pub conflicting_ids: Vec<Uuid>,
}

/// A job as its status item holds it: cheap to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub job_id: Uuid,
    pub owner: OperatorId,
    pub treaty_id: TreatyId,
    pub state: JobState,
    pub chunks_total: u32,
    pub chunks_done: u32,
    pub row_count: u64,
    pub clearance_id: Option<Uuid>,
    pub error: Option<JobFailure>,
    pub created_at_secs: i64,
    pub updated_at_secs: i64,
}

/// Splits rows into the job's chunks in the guard's lock order.
pub fn plan_chunks(mut rows: Vec<SnapshotRowRef>) -> Vec<Vec<SnapshotRowRef>> {
    rows.sort_unstable_by_key(|r| (r.accounting_period, r.id));
    rows.chunks(CHUNK_ROWS).map(<[SnapshotRowRef]>::to_vec).collect()
}

const REF_BYTES: usize = 16 + 4 + 8;

/// A chunk's rows as stored: 28 bytes a row (id, period as days from
/// 1970-01-01, row version), then zstd.
///
/// # Errors
/// When compression fails.
pub fn encode_chunk(rows: &[SnapshotRowRef]) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(rows.len() * REF_BYTES);
    for row in rows {
        raw.extend_from_slice(row.id.as_bytes());
        let days = (row.accounting_period - NaiveDate::default()).num_days() as i32;
        raw.extend_from_slice(&days.to_le_bytes());
        raw.extend_from_slice(&row.row_version.to_le_bytes());
    }
    zstd::encode_all(raw.as_slice(), 1)
}

/// # Errors
/// When the bytes are not a chunk [`encode_chunk`] wrote.
pub fn decode_chunk(bytes: &[u8]) -> Result<Vec<SnapshotRowRef>, StepError> {
    let corrupt = || StepError::Fatal("a stored job chunk is corrupt".into());
    // Bounded: a frame that inflates past a full chunk is corrupt, not a
    // reason to allocate whatever it claims.
    let decoder = zstd::stream::read::Decoder::new(bytes).map_err(|_| corrupt())?;
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(decoder, (CHUNK_ROWS * REF_BYTES + 1) as u64),
        &mut raw,
    )
    .map_err(|_| corrupt())?;
    if raw.len() % REF_BYTES != 0 || raw.len() / REF_BYTES > CHUNK_ROWS {
        return Err(corrupt());
    }
    raw.chunks_exact(REF_BYTES)
        .map(|r| {
            let id = Uuid::from_slice(&r[..16]).map_err(|_| corrupt())?;
            let days = i32::from_le_bytes(r[16..20].try_into().map_err(|_| corrupt())?);
            let accounting_period = NaiveDate::default()
                .checked_add_signed(chrono::Duration::days(i64::from(days)))
                .ok_or_else(corrupt)?;
            let row_version = i64::from_le_bytes(r[20..28].try_into().map_err(|_| corrupt())?);
            Ok(SnapshotRowRef { id, accounting_period, row_version })
        })
        .collect()
}

/// Where jobs live: the status item, the plan and its chunks.
pub trait JobStore: Send + Sync {
    /// Creates the job (status `running`, plan, chunks). Idempotent: a job
    /// that exists is left as it is.
    ///
    /// # Errors
    /// MUST return [`BackendError`] unless everything is stored.
    fn create(
        &self,
        status: &JobStatus,
        plan: &JobPlan,
        chunks: &[Vec<u8>],
        expires_at_secs: i64,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// # Errors
    /// MUST return [`BackendError`] on any failure other than "not found".
    fn status(&self, job_id: Uuid) -> impl Future<Output = Result<Option<JobStatus>, BackendError>> + Send;

    /// # Errors
    /// As [`JobStore::status`].
    fn plan(&self, job_id: Uuid) -> impl Future<Output = Result<Option<JobPlan>, BackendError>> + Send;

    /// The stored chunk `k` ([`encode_chunk`]).
    ///
    /// # Errors
    /// As [`JobStore::status`].
    fn chunk(
        &self,
        job_id: Uuid,
        k: u32,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, BackendError>> + Send;

    /// Counts chunk `k` done, once however often it is called.
    ///
    /// # Errors
    /// As [`JobStore::status`].
    fn chunk_done(
        &self,
        job_id: Uuid,
        k: u32,
        now_secs: i64,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Ends a running job; a job already ended keeps its end.
    ///
    /// # Errors
    /// As [`JobStore::status`].
    fn finish(
        &self,
        job_id: Uuid,
        state: JobState,
        clearance_id: Option<Uuid>,
        error: Option<&JobFailure>,
        now_secs: i64,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// The ledger's side of a job. Every method is idempotent.
pub trait BatchLedger: Send + Sync {
    /// Moves `rows` open→pending for the job's clearance, under the row
    /// guard; rows already pending for it are left alone.
    ///
    /// # Errors
    /// [`LedgerWriteError::StaleRows`] with the rows neither open at the
    /// snapshot's version nor already this job's (nothing written).
    fn reserve(
        &self,
        scope: &JobScope,
        rows: &[SnapshotRowRef],
    ) -> impl Future<Output = Result<u64, LedgerWriteError>> + Send;

    /// Moves the job's pending rows to cleared and writes the clearance,
    /// with its `ClearancePosted` event in the outbox, in one transaction;
    /// when the clearance exists, does nothing and says so.
    ///
    /// # Errors
    /// [`LedgerWriteError`] when the pending rows are not the plan's.
    fn finalize(
        &self,
        scope: &JobScope,
        row_count: u64,
        check: &Check,
        posting: &Posting,
        header: &ClearanceHeader,
    ) -> impl Future<Output = Result<Posted, LedgerWriteError>> + Send;

    /// Opens every row still pending for the job's clearance, unless the
    /// clearance is in the ledger: then it writes nothing and MUST answer
    /// [`Release::ClearancePosted`], deciding after it holds the job's
    /// pending rows (so a finalize still committing is waited for, never
    /// undone). Otherwise `failed` goes to the outbox in the same
    /// transaction (once per event id, however often compensation runs).
    ///
    /// # Errors
    /// Backend errors.
    fn release(
        &self,
        scope: &JobScope,
        failed: &ClearanceEvent,
    ) -> impl Future<Output = Result<Release, LedgerWriteError>> + Send;
}

/// What a release found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The rows still pending were opened (none, when there were none).
    Released(Posted),
    /// The job's clearance is in the ledger: its finalize committed, and
    /// the job succeeded whatever failed after.
    ClearancePosted,
}

/// What compensation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compensation {
    /// The job failed; this many rows were opened again.
    Released(u64),
    /// The clearance was posted after all: the job is to be announced as
    /// succeeded, never failed.
    Posted(Uuid),
}

/// Starts a job's workflow: Step Functions in AWS (execution name = job
/// id, so a duplicate start is a no-op), the in-process runner locally.
pub trait JobStarter: Send + Sync {
    /// # Errors
    /// MUST return [`BackendError`] when the workflow could not be started.
    fn start(&self, job_id: Uuid) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// The four steps, over the ports. The batch function and the local runner
/// both call exactly these.
pub struct BatchSteps<J, B, E, M> {
    pub jobs: J,
    pub ledger: B,
    pub events: E,
    pub mirror: M,
}

impl<J: JobStore, B: BatchLedger + EventOutbox, E: EventPublisher, M: ScopeMirror> BatchSteps<J, B, E, M> {
    async fn job_plan(&self, job_id: Uuid) -> Result<JobPlan, StepError> {
        self.jobs.plan(job_id).await?.ok_or_else(|| StepError::Fatal(format!("no job {job_id}")))
    }

    /// The chunk numbers to reserve, in order.
    ///
    /// # Errors
    /// [`StepError`] as named.
    pub async fn plan(&self, job_id: Uuid) -> Result<Vec<u32>, StepError> {
        let plan = self.job_plan(job_id).await?;
        Ok((0..plan.chunks).collect())
    }

    /// Reserves chunk `k`.
    ///
    /// # Errors
    /// [`StepError::Conflict`] with the rows that moved.
    pub async fn reserve(&self, job_id: Uuid, k: u32, now_secs: i64) -> Result<u64, StepError> {
        let plan = self.job_plan(job_id).await?;
        let bytes = self
            .jobs
            .chunk(job_id, k)
            .await?
            .ok_or_else(|| StepError::Fatal(format!("job {job_id} has no chunk {k}")))?;
        let rows = decode_chunk(&bytes)?;
        let reserved = self.ledger.reserve(&plan.scope()?, &rows).await?;
        self.jobs.chunk_done(job_id, k, now_secs).await?;
        Ok(reserved)
    }

    /// Clears the reserved rows and posts the clearance: the ledger only.
    /// Telling about it is [`BatchSteps::announce`], a step of its own, so
    /// that nothing failing after this commit can send the job to
    /// compensation.
    ///
    /// # Errors
    /// [`StepError`] as named.
    pub async fn finalize(&self, job_id: Uuid) -> Result<Uuid, StepError> {
        let plan = self.job_plan(job_id).await?;
        let scope = plan.scope()?;
        let (check, posting, header) = plan.posting()?;
        let posted = self.ledger.finalize(&scope, plan.row_count, &check, &posting, &header).await?;
        if !posted.already_posted {
            if let Err(e) = self.mirror.publish(&[(scope.treaty, posted.scope_version)]).await {
                crate::ports::mirror_not_raised(&e);
            }
        }
        Ok(plan.clearance_id)
    }

    /// Announces a posted job: its status `succeeded` with the clearance,
    /// then its `ClearancePosted` event out of the outbox (finalize wrote it
    /// there with the clearance). Runs only once the ledger holds the
    /// clearance; it is retried when the status write fails, never
    /// compensated. A bus that refuses fails nothing: the event stays in
    /// the outbox for the scheduled drain.
    ///
    /// # Errors
    /// [`StepError::Retryable`] when the status could not be written.
    pub async fn announce(&self, job_id: Uuid, now_secs: i64) -> Result<Uuid, StepError> {
        let plan = self.job_plan(job_id).await?;
        self.jobs.finish(job_id, JobState::Succeeded, Some(plan.clearance_id), None, now_secs).await?;
        publish_committed(&self.ledger, &self.events, plan.clearance_id).await;
        Ok(plan.clearance_id)
    }

    /// Publishes what the outbox holds (the scheduled drain): until it is
    /// empty, the bus refuses, or `rounds` rounds ran.
    ///
    /// # Errors
    /// [`StepError::Retryable`] when the outbox cannot be read or written.
    pub async fn drain_outbox(&self, rounds: u32) -> Result<crate::outbox::Drained, StepError> {
        Ok(crate::outbox::drain(&self.ledger, &self.events, None, rounds).await?)
    }

    /// Releases the job's pending rows and fails it with `failure`, unless
    /// the ledger holds the job's clearance (a finalize that committed
    /// before something after it failed): then nothing is released or
    /// failed, and the job is to be announced.
    ///
    /// # Errors
    /// [`StepError`] as named.
    pub async fn compensate(
        &self,
        job_id: Uuid,
        failure: &JobFailure,
        now_secs: i64,
    ) -> Result<Compensation, StepError> {
        let plan = self.job_plan(job_id).await?;
        let scope = plan.scope()?;
        let mut told = failure.clone();
        told.conflicting_ids.truncate(crate::outbox::EVENT_IDS_MAX);
        let failed = ClearanceEvent {
            error: Some(told),
            ..ClearanceEvent::new(
                EventKind::ClearanceFailed,
                plan.clearance_id,
                Some(job_id),
                &plan.treaty_id,
                &plan.owner,
                plan.row_count,
            )
        };
        let released = match self.ledger.release(&scope, &failed).await? {
            Release::Released(released) => released,
            Release::ClearancePosted => {
                tracing::warn!(%job_id, clearance_id = %plan.clearance_id, code = failure.code,
                    "compensation found the clearance posted: the job succeeded, announcing it");
                return Ok(Compensation::Posted(plan.clearance_id));
            }
        };
        if released.rows > 0 {
            if let Err(e) = self.mirror.publish(&[(scope.treaty, released.scope_version)]).await {
                crate::ports::mirror_not_raised(&e);
            }
        }
        self.jobs.finish(job_id, JobState::Failed, None, Some(failure), now_secs).await?;
        publish_committed(&self.ledger, &self.events, plan.clearance_id).await;
        Ok(Compensation::Released(released.rows))
    }
}

/// The failure a step error ends a job with.
pub fn failure_of(err: &StepError) -> JobFailure {
    match err {
        StepError::Conflict(ids) => JobFailure {
            code: "conflict".into(),
            message: format!(
                "{} selected rows were cleared or changed by someone else since the snapshot: search again",
                ids.len()
            ),
            conflicting_ids: ids.clone(),
        },
        StepError::PeriodClosed(_) => JobFailure {
            code: "period_closed".into(),
            message: format!("{err}: ask a closer to reopen them, then clear again"),
            conflicting_ids: Vec::new(),
        },
        other => {
            JobFailure { code: "failed".into(), message: other.to_string(), conflicting_ids: Vec::new() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_in_lock_order() -> Result<(), StepError> {
        let day = |d: u32| NaiveDate::from_ymd_opt(2024, d, 1).unwrap_or_default();
        let rows: Vec<SnapshotRowRef> = (0..12_001_u128)
            .map(|n| SnapshotRowRef {
                id: Uuid::from_u128(n * 7919 % 12_001),
                accounting_period: day((n % 12) as u32 + 1),
                row_version: n as i64,
            })
            .collect();
        let chunks = plan_chunks(rows.clone());
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![5_000, 5_000, 2_001]);
        let flat: Vec<SnapshotRowRef> = chunks.concat();
        assert!(flat
            .windows(2)
            .all(|w| (w[0].accounting_period, w[0].id) < (w[1].accounting_period, w[1].id)));
        for chunk in &chunks {
            let bytes = encode_chunk(chunk).map_err(|e| StepError::Fatal(e.to_string()))?;
            assert!(bytes.len() < 350_000);
            assert_eq!(&decode_chunk(&bytes)?, chunk);
        }
        assert!(decode_chunk(b"not zstd").is_err());
        Ok(())
    }

    #[test]
    fn a_chunk_that_inflates_past_a_full_chunk_is_corrupt_without_being_inflated() -> std::io::Result<()> {
        // 64 MiB of zeros compress to a few KiB; decoding stops one byte past
        // the largest chunk there can be.
        let bomb = zstd::encode_all(std::io::Read::take(std::io::repeat(0), 64 << 20), 19)?;
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(decode_chunk(&bomb), Err(StepError::Fatal(_))));
        Ok(())
    }

    #[test]
    fn error_names_are_distinct_and_stable() {
        assert_eq!(ERROR_NAMES, ["Clearance.Conflict", "Clearance.Retryable", "Clearance.Fatal"]);
        assert_eq!(StepError::Conflict(vec![]).name(), ERROR_CONFLICT);
        assert_eq!(StepError::from(BackendError::new("x")).name(), ERROR_RETRYABLE);
    }
}
