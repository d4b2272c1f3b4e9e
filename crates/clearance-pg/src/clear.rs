//! The clearance guard: one SQL transaction that writes the header, then
//! in one statement clears every selected row still exactly as the snapshot
//! recorded it and writes its line, compares the count and the total with
//! the selection, writes the journal and bumps the scope version; or, when
//! a row moved, rolls back and names the moved rows. Optimistic and
//! row-level: rows are locked in one fixed order (period, id), only the
//! selected rows are locked, and the treaty's scope row is touched last, so
//! it is held only for the commit (ADR 0005, ADR 0014).

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clearance_core::clearance::{
    Account, Check, ClearanceRecord, JournalLine, Posting, ReversalHeader, ReversalRecord,
};
pub use clearance_core::clearance::{ClearanceHeader, SnapshotRowRef};
use clearance_core::closes::{PeriodChange, PeriodEntry};
use clearance_core::outbox::{ClearanceEvent, EventKind, EventOutbox};
use clearance_core::ports::{
    BackendError, ClearanceLedger, JobBinding, JobKey, LedgerWriteError, Posted, PriorUse,
};
use clearance_core::{Amount, Currency, TreatyId};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The PostgreSQL error of a unique violation on `constraint`, if it is one.
pub(crate) fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.code().as_deref() == Some("23505") && e.constraint() == Some(constraint))
}

/// A broken invariant of the ledger (the transaction is rolled back): the
/// message names the clearance; the edge logs it and nothing retries it.
pub(crate) fn invariant(what: String) -> LedgerWriteError {
    LedgerWriteError::Invariant(what)
}

pub(crate) fn db(err: impl Into<anyhow::Error>) -> LedgerWriteError {
    LedgerWriteError::Backend(crate::backend(err.into()))
}

/// SQL string literal of a treaty code. Codes hold only A-Z, 0-9 and '-'
/// (checked by the type), so quoting cannot be escaped; the literal lets the
/// planner prune to the treaty's leaf at plan time.
pub(crate) fn treaty_literal(treaty: &TreatyId) -> String {
    assert!(treaty.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    format!("'{treaty}'")
}

/// Clears `rows` of `treaty` against `check` in one transaction, or does
/// nothing. When the ledger already holds a clearance under the header's
/// operator and idempotency key, nothing is written and that clearance is
/// named (`already_posted`).
///
/// # Errors
/// [`LedgerWriteError::StaleRows`] with the moved ids when any selected row
/// is not open at the snapshot's version (nothing written); database errors.
pub async fn post_clearance(
    pool: &PgPool,
    treaty: &TreatyId,
    rows: &[SnapshotRowRef],
    check: &Check,
    posting: &Posting,
    header: &ClearanceHeader,
) -> Result<Posted, LedgerWriteError> {
    let mut distinct: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if rows.is_empty() || distinct.len() != rows.len() {
        return Err(db(anyhow::anyhow!("a clearance names each of its rows once, and at least one")));
    }
    post_in_transaction(pool, treaty, rows, check, posting, header).await
}

/// The guard's statements are primary-key probes by design: whatever the
/// statistics say, a hash or merge join over a treaty's whole leaf, or a
/// materialized inner side, is never the plan for them (measured: 58 ms
/// against 6 ms for 1,000 rows), and the nested loop walks the sorted
/// arrays, which is the lock order. Their state predicates sit in the join
/// condition (see [`take_open_rows_sql`]): a plain `status = 'open'` lets a
/// stale estimate put the treaty's rows on the outer side.
/// With [`plan_once`].
pub(crate) async fn key_lookups_only(tx: &mut Transaction<'_, Postgres>) -> Result<(), LedgerWriteError> {
    plan_once(tx).await?;
    sqlx::query(
        "SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
                set_config('enable_material', 'off', true)",
    )
    .execute(&mut **tx)
    .await
    .context("scoping the planner to key lookups")
    .map_err(db)?;
    Ok(())
}

/// For a writing transaction only: no JIT (a 100K-row probe plan looks
/// costly enough to be compiled, about a third of a second that the probes
/// never win back), and the plan cache's own choice instead of the
/// session's `force_custom_plan`, so the lines' foreign-key check is planned
/// once, not once per line (about 1.8 s of a 100K-row clear in
/// `../shared/evidence`). The guard's statements name the treaty literally,
/// so a generic plan still prunes to its leaves.
pub(crate) async fn plan_once(tx: &mut Transaction<'_, Postgres>) -> Result<(), LedgerWriteError> {
    sqlx::query("SELECT set_config('jit', 'off', true), set_config('plan_cache_mode', 'auto', true)")
        .execute(&mut **tx)
        .await
        .context("planning the writes once")
        .map_err(db)?;
    Ok(())
}

pub(crate) enum HeaderError {
    /// The clearance id or the operator's idempotency key is already posted.
    KeyTaken,
    Ledger(LedgerWriteError),
}

impl From<HeaderError> for LedgerWriteError {
    fn from(err: HeaderError) -> Self {
        match err {
            HeaderError::KeyTaken => LedgerWriteError::KeyBoundElsewhere,
            HeaderError::Ledger(e) => e,
        }
    }
}

/// Writes the clearance header (audit: operator, snapshot, filter, token, key).
pub(crate) async fn insert_header(
    tx: &mut Transaction<'_, Postgres>,
    treaty: &TreatyId,
    row_count: u64,
    check: &Check,
    posting: &Posting,
    header: &ClearanceHeader,
) -> Result<(), HeaderError> {
    let row_count = i32::try_from(row_count)
        .map_err(|_| HeaderError::Ledger(db(anyhow::anyhow!("{row_count} rows in one clearance"))))?;
    let inserted = sqlx::query(
        "INSERT INTO clearances (clearance_id, treaty_id, check_number, check_amount, currency, received_on,
            cleared_total, difference, row_count, operator_id, snapshot_id, snapshot_filter, version_token, idempotency_key,
            request_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15)",
    )
    .bind(header.clearance_id)
    .bind(treaty.as_str())
    .bind(&check.number)
    .bind(check.amount.as_decimal())
    .bind(check.currency.as_str())
    .bind(check.received_on)
    .bind(posting.cleared_total.as_decimal())
    .bind(posting.difference.as_decimal())
    .bind(row_count)
    .bind(&header.operator_id)
    .bind(&header.snapshot_id)
    .bind(&header.snapshot_filter)
    .bind(&header.version_token)
    .bind(&header.idempotency_key)
    .bind(fingerprint(&header.request_hash))
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e)
            if is_unique_violation(&e, "clearance_idempotency_key_once")
                || is_unique_violation(&e, "clearances_pkey") =>
        {
            Err(HeaderError::KeyTaken)
        }
        Err(e) => Err(HeaderError::Ledger(db(anyhow::Error::new(e).context("writing the clearance header")))),
    }
}

/// Writes one line per cleared row, with the values read under its lock.
pub(crate) async fn insert_lines(
    tx: &mut Transaction<'_, Postgres>,
    clearance_id: Uuid,
    treaty: &TreatyId,
    ids: &[Uuid],
    periods: &[NaiveDate],
    amounts: &[Decimal],
    versions: &[i64],
) -> Result<(), LedgerWriteError> {
    sqlx::query(
        "INSERT INTO clearance_lines (clearance_id, transaction_id, treaty_id, accounting_period, amount, row_version)
         SELECT $1, s.id, $2, s.accounting_period, s.amount, s.row_version
         FROM unnest($3::uuid[], $4::date[], $5::numeric[], $6::bigint[]) AS s(id, accounting_period, amount, row_version)",
    )
    .bind(clearance_id)
    .bind(treaty.as_str())
    .bind(ids)
    .bind(periods)
    .bind(amounts)
    .bind(versions)
    .execute(&mut **tx)
    .await
    .context("writing the clearance lines")
    .map_err(db)?;
    Ok(())
}

/// Writes the posting's journal lines (balanced; the deferred trigger checks
/// again at commit).
pub(crate) async fn write_journal(
    tx: &mut Transaction<'_, Postgres>,
    clearance_id: Uuid,
    check: &Check,
    posting: &Posting,
) -> Result<(), LedgerWriteError> {
    assert!(posting.balances(), "a posting must balance before it is written");
    let accounts: Vec<&str> = posting.lines.iter().map(|l| l.account.as_str()).collect();
    let debits: Vec<Decimal> = posting.lines.iter().map(|l| l.debit.as_decimal()).collect();
    let credits: Vec<Decimal> = posting.lines.iter().map(|l| l.credit.as_decimal()).collect();
    sqlx::query(
        "INSERT INTO journal_entries (clearance_id, account, debit, credit, currency)
         SELECT $1, a, d, c, $5 FROM unnest($2::text[], $3::numeric[], $4::numeric[]) AS j(a, d, c)",
    )
    .bind(clearance_id)
    .bind(&accounts)
    .bind(&debits)
    .bind(&credits)
    .bind(check.currency.as_str())
    .execute(&mut **tx)
    .await
    .context("writing the journal")
    .map_err(db)?;
    Ok(())
}

/// The keys of a selection in the one lock order of every writing
/// transaction, (period, id), as the arrays the statements unnest.
pub(crate) struct RowKeys {
    pub ids: Vec<Uuid>,
    pub periods: Vec<NaiveDate>,
    pub versions: Vec<i64>,
}

impl RowKeys {
    pub fn in_lock_order(rows: &[SnapshotRowRef]) -> Self {
        let mut rows = rows.to_vec();
        rows.sort_unstable_by_key(|r| (r.accounting_period, r.id));
        Self {
            ids: rows.iter().map(|r| r.id).collect(),
            periods: rows.iter().map(|r| r.accounting_period).collect(),
            versions: rows.iter().map(|r| r.row_version).collect(),
        }
    }

    pub fn len(&self) -> u64 {
        self.ids.len() as u64
    }
}

/// The UPDATE that takes the selected rows still open at the snapshot's
/// version to `$4` for clearance `$5`, with row_version + 1, returning each
/// row taken. The nested loop (see [`key_lookups_only`]) walks the arrays
/// in their (period, id) order with one primary-key probe each, so rows are
/// locked in the one fixed order. The state is compared inside the join
/// condition (`CASE ... END = s.row_version`), where the planner has no
/// statistics to misjudge: an estimate of few open rows in a leaf cannot put
/// the leaf on the outer side. A row updated by a concurrent transaction is
/// waited for and compared again as it committed (READ COMMITTED), so a row
/// cleared meanwhile is simply not taken.
fn take_open_rows_sql(treaty_sql: &str) -> String {
    format!(
        "UPDATE transactions t
         SET status = $4::txn_status, clearance_id = $5, row_version = t.row_version + 1
         FROM unnest($1::uuid[], $2::date[], $3::bigint[]) AS s(id, accounting_period, row_version)
         WHERE t.treaty_id = {treaty_sql} AND t.accounting_period = s.accounting_period AND t.id = s.id
           AND CASE WHEN t.status = 'open' THEN t.row_version END = s.row_version
         RETURNING t.id, t.accounting_period, t.amount, s.row_version"
    )
}

/// Clears the selected rows still open at the snapshot's version and writes
/// one line for each, in one statement (the lines are fed by the UPDATE's
/// `RETURNING`): how many rows it cleared and their total. Fewer rows than
/// selected means some moved; the caller rolls back.
pub(crate) async fn clear_with_lines(
    tx: &mut Transaction<'_, Postgres>,
    treaty: &TreatyId,
    clearance_id: Uuid,
    keys: &RowKeys,
) -> Result<(u64, Decimal), LedgerWriteError> {
    let (count, total): (i64, Decimal) = sqlx::query_as(&format!(
        "WITH taken AS ({}),
         lined AS (
             INSERT INTO clearance_lines (clearance_id, transaction_id, treaty_id, accounting_period, amount, row_version)
             SELECT $5, id, $6, accounting_period, amount, row_version FROM taken
             RETURNING amount
         )
         SELECT count(*), coalesce(sum(amount), 0) FROM lined",
        take_open_rows_sql(&treaty_literal(treaty))
    ))
    .bind(&keys.ids)
    .bind(&keys.periods)
    .bind(&keys.versions)
    .bind("cleared")
    .bind(clearance_id)
    .bind(treaty.as_str())
    .fetch_one(&mut **tx)
    .await
    .context("clearing the rows and writing their lines")
    .map_err(db)?;
    Ok((u64::try_from(count).unwrap_or_default(), total))
}

/// Reserves the selected rows still open at the snapshot's version for a
/// job (open -> pending, carrying its clearance id): how many it took.
pub(crate) async fn reserve_open_rows(
    tx: &mut Transaction<'_, Postgres>,
    treaty: &TreatyId,
    clearance_id: Uuid,
    keys: &RowKeys,
) -> Result<u64, LedgerWriteError> {
    let count: i64 = sqlx::query_scalar(&format!(
        "WITH taken AS ({}) SELECT count(*) FROM taken",
        take_open_rows_sql(&treaty_literal(treaty))
    ))
    .bind(&keys.ids)
    .bind(&keys.periods)
    .bind(&keys.versions)
    .bind("pending")
    .bind(clearance_id)
    .fetch_one(&mut **tx)
    .await
    .context("reserving the rows")
    .map_err(db)?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// The selected rows that are neither open at the snapshot's version nor
/// pending for `holder` (a job's own reservation): sorted, by key lookups.
pub(crate) async fn moved_rows<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    treaty: &TreatyId,
    keys: &RowKeys,
    holder: Uuid,
) -> Result<Vec<Uuid>, LedgerWriteError> {
    sqlx::query_scalar(&format!(
        "SELECT s.id FROM unnest($1::uuid[], $2::date[], $3::bigint[]) AS s(id, accounting_period, row_version)
         WHERE NOT EXISTS (
             SELECT 1 FROM transactions t
             WHERE t.treaty_id = {} AND t.accounting_period = s.accounting_period AND t.id = s.id
               AND CASE WHEN t.status = 'open' THEN t.row_version = s.row_version
                        ELSE t.status = 'pending' AND t.clearance_id = $4 END)
         ORDER BY s.id",
        treaty_literal(treaty)
    ))
    .bind(&keys.ids)
    .bind(&keys.periods)
    .bind(&keys.versions)
    .bind(holder)
    .fetch_all(executor)
    .await
    .context("reading which selected rows moved")
    .map_err(db)
}

/// The moved rows of a refused clearance, read after its rollback in a
/// transaction of their own (key lookups, read only): a row it could not
/// take had been changed by a committed transaction, which this read sees;
/// a row changed since (by a later commit) is named too, being stale now.
async fn stale_rows(
    pool: &PgPool,
    treaty: &TreatyId,
    keys: &RowKeys,
    clearance_id: Uuid,
) -> Result<LedgerWriteError, LedgerWriteError> {
    let mut tx = pool.begin().await.context("starting the stale-row read").map_err(db)?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .context("making the stale-row read read-only")
        .map_err(db)?;
    key_lookups_only(&mut tx).await?;
    // No row is pending for the nil id: every row not open at its version
    // is named (a row pending for a job is moved, whatever the job).
    let moved = moved_rows(&mut *tx, treaty, keys, Uuid::nil()).await?;
    tx.rollback().await.context("ending the stale-row read").map_err(db)?;
    if moved.is_empty() {
        return Err(invariant(format!(
            "clearance {clearance_id}: fewer rows cleared than selected, yet every row is open at its version"
        )));
    }
    Ok(LedgerWriteError::StaleRows(moved))
}

/// A row of a clearance being reversed, as its lock found it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct LockedRow {
    pub status: String,
    pub clearance_id: Option<Uuid>,
}

/// Locks rows of one treaty in the arrays' order (callers sort them by
/// period and id: one fixed order, no deadlocks). The nested loop walks the
/// arrays in order with one primary-key probe each, pruned at run time to
/// the row's leaf; rows that do not exist are simply absent.
async fn lock_rows(
    tx: &mut Transaction<'_, Postgres>,
    treaty_sql: &str,
    ids: &[Uuid],
    periods: &[NaiveDate],
) -> Result<Vec<LockedRow>, LedgerWriteError> {
    sqlx::query_as(&format!(
        "SELECT x.status::text AS status, x.clearance_id
         FROM unnest($1::uuid[], $2::date[]) AS s(id, accounting_period)
         CROSS JOIN LATERAL (
             SELECT t.status, t.clearance_id FROM transactions t
             WHERE t.treaty_id = {treaty_sql} AND t.accounting_period = s.accounting_period AND t.id = s.id
             FOR UPDATE
         ) x"
    ))
    .bind(ids)
    .bind(periods)
    .fetch_all(&mut **tx)
    .await
    .context("locking the clearance's rows")
    .map_err(db)
}

/// A fingerprint as stored: none for a job planned before they were kept.
pub(crate) fn fingerprint(request_hash: &str) -> Option<&str> {
    (!request_hash.is_empty()).then_some(request_hash)
}

/// What an operator's idempotency key is bound to in the ledger.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyUse {
    /// `clearance`, `job`, `reversal` or `period` (a close or a reopen).
    pub kind: String,
    /// The clearance posted, to be posted by the job, or reversed (nil
    /// for a period's entry).
    pub clearance_id: Uuid,
    pub request_hash: Option<String>,
    /// Seconds since the key was bound, by the database's clock.
    pub age_secs: i64,
    /// The treaty of a clearance, a job or a period entry, and the rows of
    /// a clearance or a job (none for a reversal).
    pub treaty_id: Option<String>,
    pub row_count: Option<i32>,
}

impl KeyUse {
    /// Whether the key was bound by the request with this fingerprint (a
    /// row from before fingerprints were kept cannot say otherwise).
    pub fn same_request(&self, request_hash: &str) -> bool {
        match (self.request_hash.as_deref(), fingerprint(request_hash)) {
            (Some(kept), Some(this)) => kept == this,
            _ => true,
        }
    }
}

/// Every use of `key` by `operator`: one indexed probe per table.
pub(crate) async fn key_uses<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    operator: &str,
    key: &str,
) -> Result<Vec<KeyUse>, LedgerWriteError> {
    sqlx::query_as(
        "SELECT 'clearance' AS kind, clearance_id, request_hash,
                extract(epoch FROM now() - created_at)::bigint AS age_secs, treaty_id, row_count
         FROM clearances WHERE operator_id = $1 AND idempotency_key = $2
         UNION ALL
         SELECT 'job', clearance_id, request_hash, extract(epoch FROM now() - created_at)::bigint,
                treaty_id, row_count
         FROM clearance_jobs WHERE operator_id = $1 AND idempotency_key = $2
         UNION ALL
         SELECT 'reversal', clearance_id, request_hash, extract(epoch FROM now() - created_at)::bigint,
                NULL, NULL
         FROM clearance_reversals WHERE operator_id = $1 AND idempotency_key = $2
         UNION ALL
         SELECT 'period', '00000000-0000-0000-0000-000000000000'::uuid, request_hash,
                extract(epoch FROM now() - created_at)::bigint, treaty_id, NULL
         FROM period_closes WHERE operator_id = $1 AND idempotency_key = $2",
    )
    .bind(operator)
    .bind(key)
    .fetch_all(executor)
    .await
    .context("reading the uses of an idempotency key")
    .map_err(db)
}

/// The clearance this very request posted already, if any; an error when
/// the key is another request's.
fn posted_by(uses: &[KeyUse], header: &ClearanceHeader) -> Result<Option<Uuid>, LedgerWriteError> {
    if uses.iter().any(|u| u.kind != "clearance" || !u.same_request(&header.request_hash)) {
        return Err(LedgerWriteError::KeyBoundElsewhere);
    }
    Ok(uses.first().map(|u| u.clearance_id))
}

async fn posted_under_key(
    tx: &mut Transaction<'_, Postgres>,
    header: &ClearanceHeader,
) -> Result<Option<Uuid>, LedgerWriteError> {
    posted_by(&key_uses(&mut **tx, &header.operator_id, &header.idempotency_key).await?, header)
}

/// What the key did for this request: see [`ClearanceLedger::prior_use`].
pub async fn prior_use(
    pool: &PgPool,
    operator: &str,
    key: &str,
    request_hash: &str,
) -> Result<PriorUse, LedgerWriteError> {
    let uses = key_uses(pool, operator, key).await?;
    if uses.iter().any(|u| u.kind == "reversal" || u.kind == "period" || !u.same_request(request_hash)) {
        return Err(LedgerWriteError::KeyBoundElsewhere);
    }
    if let Some(job) = uses.iter().find(|u| u.kind == "job") {
        let stored = |what: &str| db(anyhow::anyhow!("the job binding of {}: {what}", job.clearance_id));
        let treaty_id =
            TreatyId::parse(job.treaty_id.as_deref().unwrap_or_default()).map_err(|_| stored("treaty"))?;
        let row_count = u64::try_from(job.row_count.unwrap_or_default()).map_err(|_| stored("rows"))?;
        return Ok(PriorUse::Job {
            clearance_id: job.clearance_id,
            treaty_id,
            row_count,
            age_secs: job.age_secs,
        });
    }
    Ok(uses.first().map_or(PriorUse::Free, |u| PriorUse::Posted(u.clearance_id)))
}

/// Binds a job's key: see [`ClearanceLedger::bind_job`]. In one
/// transaction, so a refused binding leaves nothing behind.
pub async fn bind_job(pool: &PgPool, job: &JobKey) -> Result<JobBinding, LedgerWriteError> {
    let row_count =
        i32::try_from(job.row_count).map_err(|_| db(anyhow::anyhow!("{} rows in one job", job.row_count)))?;
    let mut tx = pool.begin().await.context("starting a job binding").map_err(db)?;
    let inserted: Option<bool> = sqlx::query_scalar(
        "INSERT INTO clearance_jobs (job_id, clearance_id, treaty_id, row_count, operator_id, idempotency_key,
            request_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING true",
    )
    .bind(job.job_id)
    .bind(job.clearance_id)
    .bind(job.treaty_id.as_str())
    .bind(row_count)
    .bind(&job.operator_id)
    .bind(&job.idempotency_key)
    .bind(fingerprint(&job.request_hash))
    .fetch_optional(&mut *tx)
    .await
    .context("binding a job's idempotency key")
    .map_err(db)?;
    let uses = key_uses(&mut *tx, &job.operator_id, &job.idempotency_key).await?;
    // The job's own row and the clearance it posted, by this request:
    // anything else under the key is another request's.
    let ours = |u: &KeyUse| {
        u.kind != "reversal" && u.clearance_id == job.clearance_id && u.same_request(&job.request_hash)
    };
    if !uses.iter().all(ours) || !uses.iter().any(|u| u.kind == "job") {
        return Err(LedgerWriteError::KeyBoundElsewhere);
    }
    tx.commit().await.context("committing a job binding").map_err(db)?;
    Ok(if inserted.is_some() { JobBinding::New } else { JobBinding::Same })
}

async fn post_in_transaction(
    pool: &PgPool,
    treaty: &TreatyId,
    rows: &[SnapshotRowRef],
    check: &Check,
    posting: &Posting,
    header: &ClearanceHeader,
) -> Result<Posted, LedgerWriteError> {
    let keys = RowKeys::in_lock_order(rows);
    let mut tx = pool.begin().await.context("starting the clearance").map_err(db)?;
    // A retry of a posted request: answered without taking a lock.
    if let Some(clearance_id) = posted_under_key(&mut tx, header).await? {
        return Ok(Posted::already(clearance_id));
    }
    key_lookups_only(&mut tx).await?;
    // The header first: a concurrent use of the same key (a retry after a
    // lost answer) waits on its unique index, and the one that loses reads
    // the key's uses again to say whether it was this request.
    match insert_header(&mut tx, treaty, keys.len(), check, posting, header).await {
        Ok(()) => {}
        Err(HeaderError::KeyTaken) => {
            tx.rollback().await.context("rolling back a lost race").map_err(db)?;
            let uses = key_uses(pool, &header.operator_id, &header.idempotency_key).await?;
            let posted = posted_by(&uses, header)?;
            return posted.map(Posted::already).ok_or(LedgerWriteError::KeyBoundElsewhere);
        }
        Err(HeaderError::Ledger(e)) => return Err(e),
    }
    let (cleared, total) = clear_with_lines(&mut tx, treaty, header.clearance_id, &keys).await?;
    if cleared != keys.len() {
        // Nothing is kept; which rows moved is read after the rollback.
        tx.rollback().await.context("rolling back a stale clearance").map_err(db)?;
        return Err(stale_rows(pool, treaty, &keys, header.clearance_id).await?);
    }
    // Amounts are never updated (the application role cannot), so the
    // rows at the snapshot's versions hold the snapshot's amounts.
    if total != posting.cleared_total.as_decimal() {
        return Err(invariant(format!(
            "clearance {}: the cleared rows total {total}, the posting {}",
            header.clearance_id, posting.cleared_total
        )));
    }
    write_journal(&mut tx, header.clearance_id, check, posting).await?;
    // A batch job bound under this key while the rows were taken (its own
    // table, so no unique index stops it): this posting gives way.
    if key_uses(&mut *tx, &header.operator_id, &header.idempotency_key)
        .await?
        .iter()
        .any(|u| u.kind != "clearance")
    {
        tx.rollback().await.context("rolling back for the key's job").map_err(db)?;
        return Err(LedgerWriteError::KeyBoundElsewhere);
    }
    let event = ClearanceEvent::new(
        EventKind::ClearancePosted,
        header.clearance_id,
        None,
        treaty.as_str(),
        &header.operator_id,
        cleared,
    );
    crate::outbox::record(&mut tx, &event).await?;

    // Last, so the treaty's scope row is locked only until the commit; a
    // close of one of the rows' periods committed before it is seen here.
    let scope_version = bump_scope(&mut tx, treaty).await?;
    crate::closes::refuse_closed(&mut tx, treaty, &keys.periods).await?;
    tx.commit().await.context("committing the clearance").map_err(db)?;
    Ok(Posted { clearance_id: header.clearance_id, rows: cleared, scope_version, already_posted: false })
}

/// Reverses a clearance in one transaction: the reversal row (unique per
/// clearance, so a second reversal is refused), its rows open again with new
/// versions (locked in the guard's order, each statement naming the treaty),
/// the mirror-image journal, and the scope version bumped last.
///
/// # Errors
/// [`LedgerWriteError::ClearanceNotFound`], [`LedgerWriteError::AlreadyReversed`],
/// [`LedgerWriteError::KeyBoundElsewhere`] (the key reversed another
/// clearance); database errors.
pub async fn reverse_clearance(pool: &PgPool, header: &ReversalHeader) -> Result<Posted, LedgerWriteError> {
    let mut tx = pool.begin().await.context("starting the reversal").map_err(db)?;
    let uses = key_uses(&mut *tx, &header.operator_id, &header.idempotency_key).await?;
    if !uses.is_empty() {
        return reversed_by(&uses, header);
    }
    let found: Option<(String, i32)> =
        sqlx::query_as("SELECT treaty_id, row_count FROM clearances WHERE clearance_id = $1")
            .bind(header.clearance_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    let Some((treaty, row_count)) = found else { return Err(LedgerWriteError::ClearanceNotFound) };
    let treaty = TreatyId::parse(&treaty).map_err(|e| db(anyhow::anyhow!("stored treaty id: {e}")))?;

    // First, so a concurrent second reversal waits on this row's uniqueness
    // and is then refused, instead of finding the rows already open.
    let inserted = sqlx::query(
        "INSERT INTO clearance_reversals (reversal_id, clearance_id, reason, operator_id, idempotency_key,
            request_hash)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(header.reversal_id)
    .bind(header.clearance_id)
    .bind(header.reason.as_str())
    .bind(&header.operator_id)
    .bind(&header.idempotency_key)
    .bind(fingerprint(&header.request_hash))
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e, "clearance_reversals_clearance_id_key") => {
            return Err(LedgerWriteError::AlreadyReversed)
        }
        Err(e)
            if is_unique_violation(&e, "reversal_idempotency_key_once")
                || is_unique_violation(&e, "clearance_reversals_pkey") =>
        {
            // A concurrent use of the key committed first: this request's
            // only if it reversed this clearance with this body.
            tx.rollback().await.context("rolling back a lost race").map_err(db)?;
            let uses = key_uses(pool, &header.operator_id, &header.idempotency_key).await?;
            return reversed_by(&uses, header);
        }
        Err(e) => return Err(db(anyhow::Error::new(e).context("writing the reversal"))),
    }

    let (reopened, periods) = reopen_rows(&mut tx, &treaty, header, row_count).await?;
    let event = ClearanceEvent::new(
        EventKind::ClearanceReversed,
        header.clearance_id,
        None,
        treaty.as_str(),
        &header.operator_id,
        reopened,
    );
    crate::outbox::record(&mut tx, &event).await?;
    let scope_version = bump_scope(&mut tx, &treaty).await?;
    crate::closes::refuse_closed(&mut tx, &treaty, &periods).await?;
    tx.commit().await.context("committing the reversal").map_err(db)?;
    Ok(Posted { clearance_id: header.clearance_id, rows: reopened, scope_version, already_posted: false })
}

/// The reversal's rows open again (locked in the guard's order, checked
/// to be held by the clearance under the locks) and its mirror-image
/// journal: how many rows it reopened and their periods.
async fn reopen_rows(
    tx: &mut Transaction<'_, Postgres>,
    treaty: &TreatyId,
    header: &ReversalHeader,
    row_count: i32,
) -> Result<(u64, Vec<NaiveDate>), LedgerWriteError> {
    let treaty_sql = treaty_literal(treaty);
    let lines: Vec<(Uuid, NaiveDate)> = sqlx::query_as(
        "SELECT transaction_id, accounting_period FROM clearance_lines WHERE clearance_id = $1
         ORDER BY accounting_period, transaction_id",
    )
    .bind(header.clearance_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(db)?;
    let ids: Vec<Uuid> = lines.iter().map(|l| l.0).collect();
    let periods: Vec<NaiveDate> = lines.iter().map(|l| l.1).collect();
    key_lookups_only(tx).await?;
    let locked = lock_rows(tx, &treaty_sql, &ids, &periods).await?;
    // Checked under the locks, so the UPDATE below names rows by key only
    // (a state predicate there would skew the planner's estimate).
    let held = locked
        .iter()
        .filter(|l| l.status == "cleared" && l.clearance_id == Some(header.clearance_id))
        .count();
    if held != lines.len() {
        return Err(invariant(format!(
            "clearance {}: {held} of its {} rows are cleared by it: not reversed",
            header.clearance_id,
            lines.len()
        )));
    }
    let reopened = sqlx::query(&format!(
        "UPDATE transactions t
         SET status = 'open', clearance_id = NULL, row_version = t.row_version + 1
         FROM unnest($1::uuid[], $2::date[]) AS s(id, accounting_period)
         WHERE t.treaty_id = {treaty_sql} AND t.accounting_period = s.accounting_period AND t.id = s.id"
    ))
    .bind(&ids)
    .bind(&periods)
    .execute(&mut **tx)
    .await
    .context("reopening the rows")
    .map_err(db)?
    .rows_affected();
    if reopened != row_count as u64 || lines.len() != row_count as usize {
        return Err(invariant(format!(
            "clearance {} has {row_count} rows but {} lines and {reopened} cleared rows: not reversed",
            header.clearance_id,
            lines.len()
        )));
    }
    sqlx::query(
        "INSERT INTO journal_entries (clearance_id, reversal_id, account, debit, credit, currency)
         SELECT clearance_id, $2, account, credit, debit, currency FROM journal_entries
         WHERE clearance_id = $1 AND reversal_id IS NULL ORDER BY entry_id",
    )
    .bind(header.clearance_id)
    .bind(header.reversal_id)
    .execute(&mut **tx)
    .await
    .context("writing the reversal journal")
    .map_err(db)?;
    Ok((reopened, periods))
}

/// A key already used: this very reversal done before, or another request's.
fn reversed_by(uses: &[KeyUse], header: &ReversalHeader) -> Result<Posted, LedgerWriteError> {
    let this_reversal = |u: &KeyUse| {
        u.kind == "reversal" && u.clearance_id == header.clearance_id && u.same_request(&header.request_hash)
    };
    if !uses.is_empty() && uses.iter().all(this_reversal) {
        Ok(Posted::already(header.clearance_id))
    } else {
        Err(LedgerWriteError::KeyBoundElsewhere)
    }
}

pub(crate) async fn bump_scope(
    tx: &mut Transaction<'_, Postgres>,
    treaty: &TreatyId,
) -> Result<i64, LedgerWriteError> {
    sqlx::query_scalar(
        "INSERT INTO scope_versions AS s (treaty_id, version) VALUES ($1, 1)
         ON CONFLICT (treaty_id) DO UPDATE SET version = s.version + 1, updated_at = now()
         RETURNING version",
    )
    .bind(treaty.as_str())
    .fetch_one(&mut **tx)
    .await
    .context("bumping the scope version")
    .map_err(db)
}

type HeaderRow = (
    Uuid,
    String,
    String,
    Decimal,
    String,
    NaiveDate,
    Decimal,
    Decimal,
    i32,
    String,
    String,
    String,
    String,
    DateTime<Utc>,
);

/// A clearance with its journal and reversal, or `None`.
///
/// # Errors
/// When the ledger cannot be read or holds a value the domain refuses.
pub async fn read_clearance(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<ClearanceRecord>> {
    let header: Option<HeaderRow> = sqlx::query_as(
        "SELECT clearance_id, treaty_id, check_number, check_amount, currency::text, received_on, cleared_total,
                difference, row_count, operator_id, snapshot_id, snapshot_filter::text, version_token, created_at
         FROM clearances WHERE clearance_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(h) = header else { return Ok(None) };
    let reversal: Option<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT reversal_id, reason, operator_id, created_at FROM clearance_reversals WHERE clearance_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let journal: Vec<(String, Decimal, Decimal)> = sqlx::query_as(
        "SELECT account, debit, credit FROM journal_entries WHERE clearance_id = $1 AND reversal_id IS NULL
         ORDER BY entry_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let amount = |d: Decimal| Amount::from_decimal(d).map_err(|e| anyhow::anyhow!("stored amount {d}: {e}"));
    Ok(Some(ClearanceRecord {
        clearance_id: h.0,
        treaty_id: TreatyId::parse(&h.1).map_err(|e| anyhow::anyhow!("stored treaty id: {e}"))?,
        check: Check {
            number: h.2,
            amount: amount(h.3)?,
            currency: Currency::parse(&h.4).map_err(|e| anyhow::anyhow!("stored currency: {e}"))?,
            received_on: h.5,
        },
        cleared_total: amount(h.6)?,
        difference: amount(h.7)?,
        row_count: u32::try_from(h.8)?,
        operator_id: h.9,
        snapshot_id: h.10,
        snapshot_filter: h.11,
        version_token: h.12,
        created_at: h.13,
        journal: journal
            .into_iter()
            .map(|(account, debit, credit)| {
                Ok(JournalLine {
                    account: Account::parse(&account)
                        .ok_or_else(|| anyhow::anyhow!("stored account {account}"))?,
                    debit: amount(debit)?,
                    credit: amount(credit)?,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        reversal: reversal.map(|(reversal_id, reason, operator_id, created_at)| ReversalRecord {
            reversal_id,
            reason,
            operator_id,
            created_at,
        }),
    }))
}

/// The clearance ledger on PostgreSQL, for the write path.
#[derive(Clone)]
pub struct PgClearanceLedger {
    pool: PgPool,
}

impl PgClearanceLedger {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl ClearanceLedger for PgClearanceLedger {
    async fn post(
        &self,
        treaty: &TreatyId,
        rows: &[SnapshotRowRef],
        check: &Check,
        posting: &Posting,
        header: &ClearanceHeader,
    ) -> Result<Posted, LedgerWriteError> {
        post_clearance(&self.pool, treaty, rows, check, posting, header).await
    }

    async fn reverse(&self, header: &ReversalHeader) -> Result<Posted, LedgerWriteError> {
        reverse_clearance(&self.pool, header).await
    }

    async fn prior_use(
        &self,
        operator: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<PriorUse, LedgerWriteError> {
        prior_use(&self.pool, operator, key, request_hash).await
    }

    async fn bind_job(&self, job: &JobKey) -> Result<JobBinding, LedgerWriteError> {
        bind_job(&self.pool, job).await
    }

    async fn clearance(&self, id: Uuid) -> Result<Option<ClearanceRecord>, BackendError> {
        read_clearance(&self.pool, id).await.map_err(crate::backend)
    }

    async fn change_period(&self, change: &PeriodChange) -> Result<PeriodEntry, LedgerWriteError> {
        crate::closes::change_period(&self.pool, change).await
    }
}

impl EventOutbox for PgClearanceLedger {
    async fn claim(
        &self,
        only: Option<Uuid>,
        limit: u32,
        claim_secs: u32,
    ) -> Result<Vec<ClearanceEvent>, BackendError> {
        crate::outbox::claim(&self.pool, only, limit, claim_secs).await
    }

    async fn settle(&self, published: &[Uuid], unpublished: &[Uuid]) -> Result<(), BackendError> {
        crate::outbox::settle(&self.pool, published, unpublished).await
    }
}
