//! The write path: a clearance resolved against the snapshot it came from
//! and posted through the ledger's guard; reading and reversing clearances.
//! No decision here replaces the guard: the snapshot only says which rows
//! at which versions the operator saw, PostgreSQL decides whether they are
//! still so.

use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::access::Identity;
use crate::batch::{
    encode_chunk, job_id_for, plan_chunks, JobFailure, JobPlan, JobStarter, JobState, JobStatus, JobStore,
};
use crate::clearance::{
    clearance_id_for, ClearanceHeader, ClearanceRecord, ClearanceRequest, Posting, PostingError,
    ReversalHeader, ReversalReason, Selection, SnapshotRowRef,
};
use crate::closes::{PeriodAction, PeriodChange, PeriodEntry};
use crate::idempotency::RequestKey;
use crate::ids::TreatyId;
use crate::outbox::{publish_committed, EventOutbox, EventPublisher};
use crate::period::Period;
use crate::ports::{
    BackendError, ClearanceLedger, JobKey, LedgerWriteError, PriorUse, ScopeMirror, SnapshotMeta,
    SnapshotStore,
};
use crate::read::{each_snapshot_page, ReadError};
use crate::selection::{SelectionResolver, SelectionSummary};
use crate::snapshot::SnapshotId;
use crate::views::ViewSpec;

/// Default largest selection cleared inside the request.
pub const SYNC_ROWS_MAX_DEFAULT: usize = 2_000;

/// Default largest selection one job clears.
pub const BATCH_ROWS_MAX_DEFAULT: usize = 1_000_000;
/// How long a job's status and plan are kept (7 days).
pub const JOB_TTL_SECS: i64 = 7 * 86_400;

#[derive(Debug, Clone, Copy)]
pub struct WriteConfig {
    /// Largest selection cleared inside the request; larger ones go to the
    /// batch workflow.
    pub sync_rows_max: usize,
    /// Largest selection a batch job takes.
    pub batch_rows_max: usize,
    /// How far a check may differ from its rows.
    pub tolerance: crate::tolerance::Tolerance,
}

impl Default for WriteConfig {
    fn default() -> Self {
        Self {
            sync_rows_max: SYNC_ROWS_MAX_DEFAULT,
            batch_rows_max: BATCH_ROWS_MAX_DEFAULT,
            tolerance: crate::tolerance::Tolerance::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("not entitled to treaty {0}")]
    NotEntitled(TreatyId),
    /// No such snapshot for this operator, or it expired.
    #[error("snapshot not found")]
    SnapshotNotFound,
    /// The request's version token is not the snapshot's.
    #[error("the version token is not the snapshot's")]
    VersionTokenMismatch,
    /// Ids the snapshot does not hold.
    #[error("{} ids are not in the snapshot", .ids.len())]
    UnknownIds { field: &'static str, ids: Vec<Uuid> },
    /// Selected rows that were not open when the snapshot was taken.
    #[error("{} selected rows were not open in the snapshot", .0.len())]
    RowsNotOpen(Vec<Uuid>),
    #[error("the selection spans treaties {0:?}")]
    SpansTreaties(Vec<TreatyId>),
    #[error("the selection holds no open row")]
    EmptySelection,
    /// The selected rows' sum leaves `NUMERIC(18,2)`.
    #[error("the selected rows' total is out of the ledger's range")]
    TotalOutOfRange,
    #[error("{rows} rows is over the limit of {max} cleared by one job")]
    TooLarge { rows: u64, max: usize },
    #[error(transparent)]
    Posting(#[from] PostingError),
    /// Rows that moved since the snapshot, sorted; nothing written.
    #[error("{} selected rows moved since the snapshot", .0.len())]
    Stale(Vec<Uuid>),
    #[error("no such clearance")]
    ClearanceNotFound,
    #[error("the clearance is already reversed")]
    AlreadyReversed,
    #[error("the idempotency key is bound to another posting")]
    KeyBoundElsewhere,
    /// Rows of these periods are in closed periods; nothing written.
    #[error("{} accounting periods of the rows are closed", .0.len())]
    PeriodClosed(Vec<Period>),
    #[error("the period is already closed")]
    PeriodAlreadyClosed,
    #[error("the period is not closed")]
    PeriodNotClosed,
    /// Closing and reopening periods takes the `closer` role.
    #[error("the closer role is required")]
    CloserRoleRequired,
    #[error("backend unavailable: {0}")]
    Backend(#[from] BackendError),
    #[error("the snapshot could not be read: {0}")]
    Snapshot(String),
    /// A ledger invariant does not hold: nothing was written; not retried.
    #[error("ledger invariant broken: {0}")]
    Invariant(String),
}

impl From<ReadError> for WriteError {
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::Backend(e) => Self::Backend(e),
            other => Self::Snapshot(other.to_string()),
        }
    }
}

impl From<LedgerWriteError> for WriteError {
    fn from(err: LedgerWriteError) -> Self {
        match err {
            LedgerWriteError::StaleRows(ids) => Self::Stale(ids),
            LedgerWriteError::ClearanceNotFound => Self::ClearanceNotFound,
            LedgerWriteError::AlreadyReversed => Self::AlreadyReversed,
            LedgerWriteError::KeyBoundElsewhere => Self::KeyBoundElsewhere,
            LedgerWriteError::Backend(e) => Self::Backend(e),
            LedgerWriteError::Invariant(what) => Self::Invariant(what),
            LedgerWriteError::PeriodClosed(days) => {
                match days.iter().map(|d| Period::from_first_day(*d)).collect() {
                    Ok(periods) => Self::PeriodClosed(periods),
                    Err(e) => Self::Invariant(format!("a closed period's stored day: {e}")),
                }
            }
            LedgerWriteError::PeriodAlreadyClosed => Self::PeriodAlreadyClosed,
            LedgerWriteError::PeriodNotClosed => Self::PeriodNotClosed,
        }
    }
}

/// The status of a job just planned: running, no chunk done.
fn running(who: &Identity, treaty: &TreatyId, plan: &JobPlan, now_secs: i64) -> JobStatus {
    JobStatus {
        job_id: plan.job_id,
        owner: who.operator.clone(),
        treaty_id: treaty.clone(),
        state: JobState::Running,
        chunks_total: plan.chunks,
        chunks_done: 0,
        row_count: plan.row_count,
        clearance_id: None,
        error: None,
        created_at_secs: now_secs,
        updated_at_secs: now_secs,
    }
}

/// Whether `who` may close and reopen `treaty`'s periods: the `closer`
/// role and the treaty's entitlement. No IO, so the edge asks before it
/// records an idempotency key.
///
/// # Errors
/// [`WriteError::CloserRoleRequired`], [`WriteError::NotEntitled`].
pub fn check_closer(who: &Identity, treaty: &TreatyId) -> Result<(), WriteError> {
    if !who.is_closer() {
        return Err(WriteError::CloserRoleRequired);
    }
    if !who.entitlement.allows(treaty) {
        return Err(WriteError::NotEntitled(treaty.clone()));
    }
    Ok(())
}

/// A job whose status item is gone, as the ledger tells it: succeeded
/// with its clearance when the ledger holds it, failed otherwise.
struct LedgerTold<'a> {
    job_id: Uuid,
    treaty: &'a TreatyId,
    clearance_id: Uuid,
    posted: bool,
    bound_at_secs: i64,
}

impl LedgerTold<'_> {
    fn status(&self, who: &Identity, row_count: u64) -> JobStatus {
        let error = (!self.posted).then(|| JobFailure {
            code: "job_expired".into(),
            message:
                "this job ended more than 7 days ago without posting: start a new clearance with a new key"
                    .into(),
            conflicting_ids: Vec::new(),
        });
        JobStatus {
            job_id: self.job_id,
            owner: who.operator.clone(),
            treaty_id: self.treaty.clone(),
            state: if self.posted { JobState::Succeeded } else { JobState::Failed },
            chunks_total: 0,
            chunks_done: 0,
            row_count,
            clearance_id: self.posted.then_some(self.clearance_id),
            error,
            created_at_secs: self.bound_at_secs,
            updated_at_secs: self.bound_at_secs,
        }
    }
}

/// Where a clearance spent its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClearTimings {
    /// Reading the snapshot (meta and chunks) and resolving the selection.
    pub snapshot: Duration,
    /// The PostgreSQL transaction: guard, ledger, journal, scope version.
    pub ledger: Duration,
    /// Reading the clearance back and publishing the scope mirror.
    pub read_back: Duration,
}

/// A clearance as the write path answers it, and whether the ledger already
/// held it under this idempotency key (nothing posted this time).
#[derive(Debug, Clone)]
pub struct Cleared {
    pub record: ClearanceRecord,
    pub already_posted: bool,
    pub timings: ClearTimings,
}

/// What a clearance request started: a clearance posted in the request, or
/// a batch job.
#[derive(Debug, Clone)]
pub enum ClearOutcome {
    Posted(Box<Cleared>),
    Started(JobStatus),
}

/// The adapters the write path runs over.
pub struct WritePorts<S, G, M, J, R, E> {
    pub store: S,
    pub ledger: G,
    pub mirror: M,
    pub jobs: J,
    pub starter: R,
    pub events: E,
}

pub struct WriteService<S, G, M, J, R, E> {
    store: S,
    ledger: G,
    mirror: M,
    jobs: J,
    starter: R,
    events: E,
    config: WriteConfig,
}

impl<S, G, M, J, R, E> WriteService<S, G, M, J, R, E>
where
    S: SnapshotStore,
    G: ClearanceLedger + EventOutbox,
    M: ScopeMirror,
    J: JobStore,
    R: JobStarter,
    E: EventPublisher,
{
    pub fn new(ports: WritePorts<S, G, M, J, R, E>, config: WriteConfig) -> Self {
        let WritePorts { store, ledger, mirror, jobs, starter, events } = ports;
        Self { store, ledger, mirror, jobs, starter, events, config }
    }

    pub fn config(&self) -> WriteConfig {
        self.config
    }

    /// The snapshot's meta when `who` owns it, it is live, and `who` is still
    /// entitled to its treaties.
    async fn live_snapshot(
        &self,
        who: &Identity,
        id: &SnapshotId,
        now_secs: i64,
    ) -> Result<SnapshotMeta, WriteError> {
        let meta = self
            .store
            .meta(id)
            .await?
            .filter(|m| m.owner == who.operator && m.expires_at_secs > now_secs && m.view_of.is_none())
            .ok_or(WriteError::SnapshotNotFound)?;
        if let Some(treaty) = meta.treaty_ids.iter().find(|t| !who.entitlement.allows(t)) {
            return Err(WriteError::NotEntitled(treaty.clone()));
        }
        Ok(meta)
    }

    /// [`Self::live_snapshot`] whose version token is the request's.
    async fn owned_snapshot(
        &self,
        who: &Identity,
        request: &ClearanceRequest,
        now_secs: i64,
    ) -> Result<SnapshotMeta, WriteError> {
        let meta = self.live_snapshot(who, &request.snapshot_id, now_secs).await?;
        if meta.version_token.to_string() != request.version_token {
            return Err(WriteError::VersionTokenMismatch);
        }
        Ok(meta)
    }

    /// The preview of a clearance of `selection` (DESIGN.md, "The grid's
    /// API"): reads the snapshot only, writes nothing. Every open row of a
    /// view is answered from the view's meta (built once, then one read);
    /// any other selection is resolved over the snapshot's pages, by the
    /// resolver a clearance uses.
    ///
    /// # Errors
    /// [`WriteError`]: the snapshot unknown or foreign, ids not in it,
    /// several treaties, more rows than a job takes; backend errors.
    pub async fn selection_summary(
        &self,
        who: &Identity,
        snapshot_id: &SnapshotId,
        selection: &Selection,
        now_secs: i64,
    ) -> Result<SelectionSummary, WriteError> {
        let (limit, sync_max) = (self.config.batch_rows_max, self.config.sync_rows_max);
        if let Selection::Ids(ids) = selection {
            if ids.len() > limit {
                return Err(WriteError::TooLarge { rows: ids.len() as u64, max: limit });
            }
        }
        let meta = self.live_snapshot(who, snapshot_id, now_secs).await?;
        if let Selection::AllExcept { except, view } = selection {
            if except.is_empty() {
                let view = ViewSpec::filtered(view.clone());
                let viewed = crate::read::view_meta(&self.store, &meta, &view, now_secs).await?;
                if let Some(open) = &viewed.summary.open {
                    return SelectionSummary::of_open_rows(open, limit, sync_max);
                }
            }
        }
        let mut resolver = SelectionResolver::counting(selection, limit);
        each_snapshot_page(&self.store, &meta, |page| resolver.take(&page)).await?;
        resolver.summarize(sync_max)
    }

    /// Refuses, before any IO, an id selection over the batch limit (an
    /// all-except selection is counted once resolved).
    ///
    /// # Errors
    /// [`WriteError::TooLarge`].
    pub fn check_size(&self, request: &ClearanceRequest) -> Result<(), WriteError> {
        let max = self.config.batch_rows_max;
        match &request.selection {
            Selection::Ids(ids) if ids.len() > max => {
                Err(WriteError::TooLarge { rows: ids.len() as u64, max })
            }
            _ => Ok(()),
        }
    }

    /// Clears a selection of a snapshot against a check, inside the request.
    ///
    /// # Errors
    /// [`WriteError`]: the snapshot unknown or foreign, the selection
    /// invalid or too large, the amounts or currencies not matching, rows
    /// moved since the snapshot; backend errors.
    pub async fn clear(
        &self,
        who: &Identity,
        request: &ClearanceRequest,
        key: &RequestKey,
        now_secs: i64,
    ) -> Result<ClearOutcome, WriteError> {
        self.check_size(request)?;
        if let Some(answer) = self.answered_before(who, key, now_secs).await? {
            return Ok(answer);
        }
        let started = Instant::now();
        let meta = self.owned_snapshot(who, request, now_secs).await?;
        let mut resolver = SelectionResolver::new(&request.selection, self.config.batch_rows_max);
        each_snapshot_page(&self.store, &meta, |page| resolver.take(&page)).await?;
        let (treaty, mut selected) = resolver.finish()?;
        let consent = request.consent;
        let posting = Posting::plan(
            &request.check,
            selected.iter().map(|r| (r.amount, r.currency)),
            consent.allow_difference || consent.overpayment_to_unapplied,
        )?;
        self.config.tolerance.check(&request.check, posting.cleared_total, posting.difference, consent)?;
        // The guard's lock order.
        selected.sort_unstable_by_key(|r| (r.row.accounting_period, r.row.id));
        let refs: Vec<SnapshotRowRef> = selected.into_iter().map(|r| r.row).collect();
        let header = ClearanceHeader {
            clearance_id: clearance_id_for(who.operator.as_str(), key.as_str()),
            operator_id: who.operator.as_str().to_owned(),
            snapshot_id: meta.id.as_str().to_owned(),
            snapshot_filter: meta.filter.clone(),
            version_token: meta.version_token.to_string(),
            idempotency_key: key.as_str().to_owned(),
            request_hash: key.request_hash.clone(),
        };
        if refs.len() > self.config.sync_rows_max {
            let status = self.start_job(who, key, &treaty, refs, request, &posting, header, now_secs).await?;
            return Ok(ClearOutcome::Started(status));
        }
        let mut timings = ClearTimings { snapshot: started.elapsed(), ..ClearTimings::default() };
        let posting_started = Instant::now();
        let posted = self.ledger.post(&treaty, &refs, &request.check, &posting, &header).await?;
        timings.ledger = posting_started.elapsed();
        let reading = Instant::now();
        let (record, _) = futures_util::future::join(self.ledger.clearance(posted.clearance_id), async {
            // Advisory: page reads of older snapshots now say stale. The
            // ledger already holds the truth, so a failure here fails nothing.
            if !posted.already_posted {
                if let Err(e) = self.mirror.publish(&[(treaty, posted.scope_version)]).await {
                    crate::ports::mirror_not_raised(&e);
                }
            }
        })
        .await;
        let record = record?.ok_or_else(|| BackendError::new("a posted clearance could not be read back"))?;
        // The event is in the outbox with the clearance; a replay publishes
        // what an earlier attempt could not.
        publish_committed(&self.ledger, &self.events, record.clearance_id).await;
        timings.read_back = reading.elapsed();
        Ok(ClearOutcome::Posted(Box::new(Cleared { record, already_posted: posted.already_posted, timings })))
    }

    /// The answer the ledger already holds for this request (same key, same
    /// fingerprint), whatever expired since: its clearance, or its job (from
    /// the job's status item while it lives, then from the ledger). `None`
    /// when the request is to run: the key is free, or its job's creation
    /// never completed. Read before the snapshot, which expires first.
    async fn answered_before(
        &self,
        who: &Identity,
        key: &RequestKey,
        now_secs: i64,
    ) -> Result<Option<ClearOutcome>, WriteError> {
        let prior = self.ledger.prior_use(who.operator.as_str(), key.as_str(), &key.request_hash).await?;
        match prior {
            PriorUse::Free => Ok(None),
            PriorUse::Posted(clearance_id) => {
                let record = self.clearance(who, clearance_id).await?;
                publish_committed(&self.ledger, &self.events, clearance_id).await;
                let cleared = Cleared { record, already_posted: true, timings: ClearTimings::default() };
                Ok(Some(ClearOutcome::Posted(Box::new(cleared))))
            }
            PriorUse::Job { clearance_id, treaty_id, row_count, age_secs } => {
                let job_id = job_id_for(who.operator.as_str(), key.as_str());
                if let Some(status) = self.jobs.status(job_id).await? {
                    // A start that failed before its answer: start again
                    // (a duplicate start is a no-op).
                    if status.state == JobState::Running {
                        self.starter.start(job_id).await?;
                    }
                    return Ok(Some(ClearOutcome::Started(status)));
                }
                let posted = self.ledger.clearance(clearance_id).await?.is_some();
                if !posted && age_secs < JOB_TTL_SECS {
                    return Ok(None);
                }
                let told = LedgerTold {
                    job_id,
                    treaty: &treaty_id,
                    clearance_id,
                    posted,
                    bound_at_secs: now_secs - age_secs,
                };
                Ok(Some(ClearOutcome::Started(told.status(who, row_count))))
            }
        }
    }

    /// Creates the job of a selection above the sync limit (its plan and
    /// chunks) and starts its workflow. Idempotent by the job id, which
    /// derives from the operator and the idempotency key.
    #[allow(clippy::too_many_arguments)]
    async fn start_job(
        &self,
        who: &Identity,
        key: &RequestKey,
        treaty: &TreatyId,
        refs: Vec<SnapshotRowRef>,
        request: &ClearanceRequest,
        posting: &Posting,
        header: ClearanceHeader,
        now_secs: i64,
    ) -> Result<JobStatus, WriteError> {
        let job_id = job_id_for(who.operator.as_str(), key.as_str());
        self.ledger
            .bind_job(&JobKey {
                job_id,
                clearance_id: header.clearance_id,
                treaty_id: treaty.clone(),
                row_count: refs.len() as u64,
                operator_id: header.operator_id.clone(),
                idempotency_key: header.idempotency_key.clone(),
                request_hash: header.request_hash.clone(),
            })
            .await?;
        let row_count = refs.len() as u64;
        let chunks = plan_chunks(refs);
        let first_period = chunks.first().and_then(|c| c.first()).map(|r| r.accounting_period);
        let last_period = chunks.last().and_then(|c| c.last()).map(|r| r.accounting_period);
        let (Some(first_period), Some(last_period)) = (first_period, last_period) else {
            return Err(WriteError::EmptySelection);
        };
        let encoded = chunks
            .iter()
            .map(|c| encode_chunk(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| WriteError::Snapshot(format!("encoding a job chunk: {e}")))?;
        let plan = JobPlan {
            job_id,
            clearance_id: header.clearance_id,
            owner: header.operator_id,
            treaty_id: treaty.to_string(),
            check_number: request.check.number.clone(),
            check_amount: request.check.amount.to_string(),
            currency: request.check.currency.as_str().to_owned(),
            received_on: request.check.received_on,
            // Decided above against the tolerance; finalize books the same.
            allow_difference: posting.difference != crate::money::Amount::ZERO,
            cleared_total: posting.cleared_total.to_string(),
            row_count,
            chunks: encoded.len() as u32,
            first_period,
            last_period,
            snapshot_id: header.snapshot_id,
            snapshot_filter: header.snapshot_filter,
            version_token: header.version_token,
            idempotency_key: header.idempotency_key,
            request_hash: header.request_hash,
        };
        let status = running(who, treaty, &plan, now_secs);
        self.jobs.create(&status, &plan, &encoded, now_secs + JOB_TTL_SECS).await?;
        self.starter.start(job_id).await?;
        Ok(self.jobs.status(job_id).await?.unwrap_or(status))
    }

    /// A clearance of a treaty `who` is entitled to.
    ///
    /// # Errors
    /// [`WriteError::ClearanceNotFound`] when absent or not entitled (the
    /// same answer); backend errors.
    pub async fn clearance(&self, who: &Identity, id: Uuid) -> Result<ClearanceRecord, WriteError> {
        self.ledger
            .clearance(id)
            .await?
            .filter(|r| who.entitlement.allows(&r.treaty_id))
            .ok_or(WriteError::ClearanceNotFound)
    }

    /// Reverses a clearance: a new ledger entry, its rows open again.
    ///
    /// # Errors
    /// [`WriteError::ClearanceNotFound`], [`WriteError::AlreadyReversed`],
    /// [`WriteError::KeyBoundElsewhere`]; backend errors.
    pub async fn reverse(
        &self,
        who: &Identity,
        id: Uuid,
        reason: ReversalReason,
        key: &RequestKey,
    ) -> Result<Cleared, WriteError> {
        let record = self.clearance(who, id).await?;
        let header = ReversalHeader {
            reversal_id: crate::clearance::reversal_id_for(who.operator.as_str(), key.as_str()),
            clearance_id: id,
            reason,
            operator_id: who.operator.as_str().to_owned(),
            idempotency_key: key.as_str().to_owned(),
            request_hash: key.request_hash.clone(),
        };
        let started = Instant::now();
        let posted = self.ledger.reverse(&header).await?;
        let ledger = started.elapsed();
        if !posted.already_posted {
            if let Err(e) = self.mirror.publish(&[(record.treaty_id, posted.scope_version)]).await {
                crate::ports::mirror_not_raised(&e);
            }
        }
        let record = self
            .ledger
            .clearance(id)
            .await?
            .ok_or_else(|| BackendError::new("a reversed clearance could not be read back"))?;
        publish_committed(&self.ledger, &self.events, id).await;
        let timings =
            ClearTimings { ledger, read_back: started.elapsed() - ledger, ..ClearTimings::default() };
        Ok(Cleared { record, already_posted: posted.already_posted, timings })
    }

    /// Closes or reopens an accounting period of a treaty (ADR 0015): the
    /// operator must hold the `closer` role and be entitled to the treaty.
    /// The ledger writes the entry and bumps the treaty's scope version, so
    /// earlier snapshots' pages say stale.
    ///
    /// # Errors
    /// [`WriteError::CloserRoleRequired`], [`WriteError::NotEntitled`],
    /// [`WriteError::PeriodAlreadyClosed`], [`WriteError::PeriodNotClosed`],
    /// [`WriteError::KeyBoundElsewhere`]; backend errors.
    pub async fn change_period(
        &self,
        who: &Identity,
        treaty: TreatyId,
        period: Period,
        action: PeriodAction,
        reason: String,
        key: &RequestKey,
    ) -> Result<PeriodEntry, WriteError> {
        check_closer(who, &treaty)?;
        let change = PeriodChange {
            treaty,
            period,
            action,
            reason,
            operator_id: who.operator.as_str().to_owned(),
            idempotency_key: key.as_str().to_owned(),
            request_hash: key.request_hash.clone(),
        };
        let entry = self.ledger.change_period(&change).await?;
        // Zero: the ledger answered a replay of an earlier change.
        if entry.scope_version > 0 {
            if let Err(e) = self.mirror.publish(&[(entry.treaty.clone(), entry.scope_version)]).await {
                crate::ports::mirror_not_raised(&e);
            }
        }
        Ok(entry)
    }
}
