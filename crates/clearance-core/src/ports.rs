//! The ports the core needs from the outside world, named by role. Adapters
//! (PostgreSQL, DynamoDB) implement them; the read function's ports name no
//! write to the ledger.

use std::future::Future;
use std::pin::Pin;

use futures_core::Stream;

use uuid::Uuid;

use crate::clearance::{Check, ClearanceHeader, ClearanceRecord, Posting, ReversalHeader, SnapshotRowRef};
use crate::closes::{ClosedPeriod, PeriodChange, PeriodEntry};
use crate::ids::TreatyId;
use crate::pages::{Chunk, Summary};
use crate::snapshot::{OperatorId, SearchFilter, SnapshotId, VersionToken};
use crate::transaction::LedgerRow;

/// A failure of a backend (network, throttling, a refused request). Carries
/// the adapter's error for logs; it never reaches a response body.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl BackendError {
    pub fn new(err: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self(err.into())
    }
}

/// Logs a scope-mirror publish that failed. The mirror is advisory: the
/// ledger holds the truth and the next search raises it again.
pub(crate) fn mirror_not_raised(err: &BackendError) {
    tracing::warn!(error = %err, "scope mirror not raised: page reads may miss the stale flag until the next search");
}

pub type RowStream<'a> = Pin<Box<dyn Stream<Item = Result<LedgerRow, BackendError>> + Send + 'a>>;

/// The ledger as the read path sees it.
pub trait LedgerReader: Send + Sync {
    /// The current version token of the filter's treaties: one primary-key
    /// read. A treaty with no scope row has version 0.
    ///
    /// # Errors
    /// MUST return [`BackendError`] when the ledger cannot be read; never a
    /// made-up token.
    fn version_token(
        &self,
        filter: &SearchFilter,
    ) -> impl Future<Output = Result<VersionToken, BackendError>> + Send;

    /// The snapshot of the filter: the version token and every row it
    /// selects, in primary-key order (treaty, period, id), both read in one
    /// repeatable-read, read-only transaction, so that the token is exactly
    /// the state of the rows (a write committing between two reads would
    /// make later pages say stale when they are not). The rows are
    /// streamed: the adapter MUST NOT collect them.
    ///
    /// # Errors
    /// MUST return [`BackendError`] when the read cannot start; a failure
    /// later comes as an error item of the stream.
    fn read_snapshot<'a>(
        &'a self,
        filter: &SearchFilter,
    ) -> impl Future<Output = Result<(VersionToken, RowStream<'a>), BackendError>> + Send;

    /// The closed accounting periods of the filter's treaties in its period
    /// range (ADR 0015), sorted. Shown by the search; the ledger's guard,
    /// not this read, refuses postings into them.
    ///
    /// # Errors
    /// MUST return [`BackendError`] when the ledger cannot be read.
    fn closed_periods(
        &self,
        filter: &SearchFilter,
    ) -> impl Future<Output = Result<Vec<ClosedPeriod>, BackendError>> + Send;
}

/// What a stored snapshot (or derived view) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub id: SnapshotId,
    pub owner: OperatorId,
    /// The canonical filter of the search (of the base search, for a view).
    pub filter: String,
    /// For a view: the snapshot it derives from and its canonical spec.
    pub view_of: Option<(SnapshotId, String)>,
    pub treaty_ids: Vec<TreatyId>,
    pub version_token: VersionToken,
    pub row_count: u64,
    pub page_count: u32,
    pub page_size: u32,
    pub summary: Summary,
    pub created_at_secs: i64,
    pub expires_at_secs: i64,
}

/// Where snapshots live: a meta item and one item per page chunk, each under
/// its own key.
pub trait SnapshotStore: Send + Sync {
    /// The meta item, or `None` when absent. The adapter returns what is
    /// stored even if past its expiry; the caller applies the rule.
    ///
    /// # Errors
    /// MUST return [`BackendError`] on any failure other than "not found".
    fn meta(
        &self,
        id: &SnapshotId,
    ) -> impl Future<Output = Result<Option<SnapshotMeta>, BackendError>> + Send;

    /// The compressed chunk of page `number`, or `None` when absent.
    ///
    /// # Errors
    /// As [`SnapshotStore::meta`].
    fn chunk(
        &self,
        id: &SnapshotId,
        number: u32,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, BackendError>> + Send;

    /// The compressed chunks of pages `numbers`, in that order (`None` for
    /// an absent one): one round trip per batch, not one per page.
    ///
    /// # Errors
    /// As [`SnapshotStore::meta`].
    fn chunks(
        &self,
        id: &SnapshotId,
        numbers: &[u32],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, BackendError>> + Send;

    /// Stores chunks (any number; the adapter batches). Idempotent: storing
    /// the same chunk twice leaves one.
    ///
    /// # Errors
    /// MUST return [`BackendError`] unless every chunk was stored.
    fn put_chunks(
        &self,
        id: &SnapshotId,
        chunks: &[Chunk],
        expires_at_secs: i64,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Stores the meta item. Called after every chunk is stored, so a meta
    /// item present means a complete snapshot.
    ///
    /// # Errors
    /// MUST return [`BackendError`] unless stored.
    fn put_meta(&self, meta: &SnapshotMeta) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// The advisory mirror of scope versions that page reads consult for the
/// stale flag. No write decision rests on it.
pub trait ScopeMirror: Send + Sync {
    /// The mirrored version of each treaty (0 when absent), in input order.
    ///
    /// # Errors
    /// MUST return [`BackendError`] when the mirror cannot be read.
    fn versions(&self, treaties: &[TreatyId]) -> impl Future<Output = Result<Vec<i64>, BackendError>> + Send;

    /// Raises mirrored versions to these; never lowers one.
    ///
    /// # Errors
    /// MUST return [`BackendError`] when a write fails (a version already
    /// higher is not a failure).
    fn publish(&self, versions: &[(TreatyId, i64)]) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// A write to the ledger that did not happen, and why.
#[derive(Debug, thiserror::Error)]
pub enum LedgerWriteError {
    /// Selected rows no longer open at the snapshot's version, sorted;
    /// nothing was written.
    #[error("{} selected rows moved since the snapshot", .0.len())]
    StaleRows(Vec<Uuid>),
    #[error("no such clearance")]
    ClearanceNotFound,
    #[error("the clearance is already reversed")]
    AlreadyReversed,
    /// The idempotency key is already bound to another request (another
    /// body, or another kind of posting): nothing was written.
    #[error("the idempotency key is bound to another request")]
    KeyBoundElsewhere,
    /// An invariant of the ledger does not hold (a locked total that
    /// differs from the plan, pending rows that are not the job's plan, a
    /// clearance whose rows are not all its own): nothing was written, and
    /// retrying cannot fix it. Never an outage.
    #[error("ledger invariant broken: {0}")]
    Invariant(String),
    /// Rows of these periods (first days, sorted) are in closed periods:
    /// nothing was written.
    #[error(
        "the rows' accounting periods {} are closed",
        .0.iter().map(|d| d.format("%Y-%m").to_string()).collect::<Vec<_>>().join(", ")
    )]
    PeriodClosed(Vec<chrono::NaiveDate>),
    #[error("the period is already closed")]
    PeriodAlreadyClosed,
    #[error("the period is not closed")]
    PeriodNotClosed,
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// What a posting (or reversal) did: the treaty's scope version after it,
/// and whether the ledger already held it under the same idempotency key
/// (nothing was written this time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub clearance_id: Uuid,
    pub rows: u64,
    pub scope_version: i64,
    pub already_posted: bool,
}

impl Posted {
    /// The ledger already held this posting: nothing was written now.
    pub fn already(clearance_id: Uuid) -> Self {
        Self { clearance_id, rows: 0, scope_version: 0, already_posted: true }
    }
}

/// A job's claim on its operator's idempotency key, kept in the ledger for
/// good (the job's status item lives 7 days, its execution name 90).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKey {
    pub job_id: Uuid,
    pub clearance_id: Uuid,
    pub treaty_id: TreatyId,
    pub row_count: u64,
    pub operator_id: String,
    pub idempotency_key: String,
    pub request_hash: String,
}

/// What the ledger holds under a job's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobBinding {
    /// The key was free: it is now this job's.
    New,
    /// The key is already this same request's job.
    Same,
}

/// What an operator's idempotency key already did, for this request's
/// fingerprint (another request's key is [`LedgerWriteError::KeyBoundElsewhere`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriorUse {
    /// Never used.
    Free,
    /// This request posted this clearance.
    Posted(Uuid),
    /// This request started a job, bound `age_secs` ago (by the ledger's
    /// clock).
    Job { clearance_id: Uuid, treaty_id: TreatyId, row_count: u64, age_secs: i64 },
}

/// The clearance ledger as the write path sees it. The guard lives in the
/// adapter's transaction: a posting MUST check, lock and clear the rows,
/// write header, lines and journal, bind the idempotency key with the
/// request's fingerprint, record the event in the outbox and bump the scope
/// version atomically, or do nothing. An operator's key binds one request
/// (one fingerprint) for good, whether it posted a clearance, started a job
/// or reversed a clearance.
pub trait ClearanceLedger: Send + Sync {
    /// Posts a clearance of `rows` of `treaty`, with its `ClearancePosted`
    /// event in the outbox. When this request (same key, same fingerprint)
    /// posted already, writes nothing and names that clearance.
    ///
    /// # Errors
    /// [`LedgerWriteError::StaleRows`] when any row moved (nothing written);
    /// [`LedgerWriteError::KeyBoundElsewhere`] when the key is another
    /// request's; backend errors.
    fn post(
        &self,
        treaty: &TreatyId,
        rows: &[SnapshotRowRef],
        check: &Check,
        posting: &Posting,
        header: &ClearanceHeader,
    ) -> impl Future<Output = Result<Posted, LedgerWriteError>> + Send;

    /// Reverses a clearance: its rows open again with new versions, its
    /// `ClearanceReversed` event in the outbox.
    ///
    /// # Errors
    /// [`LedgerWriteError::ClearanceNotFound`], [`LedgerWriteError::AlreadyReversed`],
    /// [`LedgerWriteError::KeyBoundElsewhere`]; backend errors.
    fn reverse(
        &self,
        header: &ReversalHeader,
    ) -> impl Future<Output = Result<Posted, LedgerWriteError>> + Send;

    /// What the key did before, if this request (its fingerprint) did it.
    ///
    /// # Errors
    /// [`LedgerWriteError::KeyBoundElsewhere`] when another request (or a
    /// reversal) holds the key; backend errors.
    fn prior_use(
        &self,
        operator: &str,
        key: &str,
        request_hash: &str,
    ) -> impl Future<Output = Result<PriorUse, LedgerWriteError>> + Send;

    /// Binds the key to a job before the job exists anywhere else.
    ///
    /// # Errors
    /// [`LedgerWriteError::KeyBoundElsewhere`] when the key is another
    /// request's; backend errors.
    fn bind_job(&self, job: &JobKey) -> impl Future<Output = Result<JobBinding, LedgerWriteError>> + Send;

    /// A clearance with its journal and reversal, or `None`.
    ///
    /// # Errors
    /// MUST return [`BackendError`] when the ledger cannot be read.
    fn clearance(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<ClearanceRecord>, BackendError>> + Send;

    /// Closes or reopens a period: one entry, the treaty's scope version
    /// bumped, in one transaction; the entry this very request wrote before
    /// when its key is already bound to it.
    ///
    /// # Errors
    /// [`LedgerWriteError::PeriodAlreadyClosed`] / [`LedgerWriteError::PeriodNotClosed`]
    /// when the period is already in the state asked for;
    /// [`LedgerWriteError::KeyBoundElsewhere`]; backend errors.
    fn change_period(
        &self,
        change: &PeriodChange,
    ) -> impl Future<Output = Result<PeriodEntry, LedgerWriteError>> + Send;
}
