//! The clearance guard: one SQL transaction that checks every selected row
//! is still exactly as the snapshot recorded it, clears them, writes the
//! ledger (header, lines, journal) and bumps the scope version. Optimistic
//! and row-level: rows are locked in one fixed order (period, id), only the
//! selected rows are locked, and the treaty's scope row is touched last, so
//! it is held only for the commit.

use anyhow::Context;
use chrono::NaiveDate;
use clearance_core::clearance::{Check, Posting};
use clearance_core::TreatyId;
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

/// A selected row as the snapshot recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRowRef {
    pub id: Uuid,
    pub accounting_period: NaiveDate,
    pub row_version: i64,
}

/// Who posts, from which snapshot, under which idempotency key.
#[derive(Debug, Clone)]
pub struct ClearanceHeader {
    pub clearance_id: Uuid,
    pub operator_id: String,
    pub snapshot_id: String,
    pub snapshot_filter: String,
    pub version_token: String,
    pub idempotency_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Rows that are no longer open at the snapshot's version; nothing was written.
    #[error("{} selected rows moved since the snapshot", .0.len())]
    StaleSnapshot(Vec<Uuid>),
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

/// The scope version after a posting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub rows: u64,
    pub scope_version: i64,
}

/// SQL string literal of a treaty code. Codes hold only A-Z, 0-9 and '-'
/// (checked by the type), so quoting cannot be escaped; the literal lets the
/// planner prune to the treaty's leaf at plan time.
fn treaty_literal(treaty: &TreatyId) -> String {
    assert!(treaty.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    format!("'{treaty}'")
}

/// Clears `rows` of `treaty` against `check` in one transaction.
///
/// # Errors
/// [`GuardError::StaleSnapshot`] with the moved ids when any selected row is
/// not open at the snapshot's version (nothing written); database errors.
pub async fn post_clearance(
    pool: &PgPool,
    treaty: &TreatyId,
    rows: &[SnapshotRowRef],
    check: &Check,
    posting: &Posting,
    header: &ClearanceHeader,
) -> Result<Posted, GuardError> {
    assert!(!rows.is_empty(), "a clearance clears at least one row");
    let mut distinct: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != rows.len() {
        return Err(GuardError::Database(anyhow::anyhow!("the selection names a row twice")));
    }
    let treaty_sql = treaty_literal(treaty);
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let periods: Vec<NaiveDate> = rows.iter().map(|r| r.accounting_period).collect();
    let versions: Vec<i64> = rows.iter().map(|r| r.row_version).collect();
    let mut tx = pool.begin().await.context("starting the clearance")?;

    // Lock the selected rows in one fixed order: two overlapping clearances
    // wait for each other instead of deadlocking.
    let locked: Vec<(Uuid, String, i64)> = sqlx::query_as(&format!(
        "SELECT t.id, t.status::text, t.row_version
         FROM transactions t
         JOIN unnest($1::uuid[], $2::date[]) AS s(id, accounting_period)
           ON t.id = s.id AND t.accounting_period = s.accounting_period
         WHERE t.treaty_id = {treaty_sql}
         ORDER BY t.accounting_period, t.id
         FOR UPDATE OF t"
    ))
    .bind(&ids)
    .bind(&periods)
    .fetch_all(&mut *tx)
    .await
    .context("locking the selected rows")?;
    let mut moved: Vec<Uuid> = rows
        .iter()
        .filter(|r| {
            !locked
                .iter()
                .any(|(id, status, version)| *id == r.id && status == "open" && *version == r.row_version)
        })
        .map(|r| r.id)
        .collect();
    if !moved.is_empty() {
        moved.sort();
        return Err(GuardError::StaleSnapshot(moved));
    }

    let cleared = sqlx::query(&format!(
        "UPDATE transactions t
         SET status = 'cleared', clearance_id = $4, row_version = t.row_version + 1
         FROM unnest($1::uuid[], $2::date[], $3::bigint[]) AS s(id, accounting_period, row_version)
         WHERE t.treaty_id = {treaty_sql} AND t.accounting_period = s.accounting_period AND t.id = s.id
           AND t.status = 'open' AND t.row_version = s.row_version"
    ))
    .bind(&ids)
    .bind(&periods)
    .bind(&versions)
    .bind(header.clearance_id)
    .execute(&mut *tx)
    .await
    .context("clearing the rows")?
    .rows_affected();
    assert_eq!(cleared, rows.len() as u64, "affected rows must equal selected rows under the row locks");

    sqlx::query(
        "INSERT INTO clearances (clearance_id, treaty_id, check_number, check_amount, currency, received_on,
            cleared_total, difference, row_count, operator_id, snapshot_id, snapshot_filter, version_token, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14)",
    )
    .bind(header.clearance_id)
    .bind(treaty.as_str())
    .bind(&check.number)
    .bind(check.amount.as_decimal())
    .bind(check.currency.as_str())
    .bind(check.received_on)
    .bind(posting.cleared_total.as_decimal())
    .bind(posting.difference.as_decimal())
    .bind(rows.len() as i32)
    .bind(&header.operator_id)
    .bind(&header.snapshot_id)
    .bind(&header.snapshot_filter)
    .bind(&header.version_token)
    .bind(&header.idempotency_key)
    .execute(&mut *tx)
    .await
    .context("writing the clearance header")?;

    sqlx::query(&format!(
        "INSERT INTO clearance_lines (clearance_id, transaction_id, treaty_id, accounting_period, amount, row_version)
         SELECT $1, t.id, t.treaty_id, t.accounting_period, t.amount, s.row_version
         FROM transactions t
         JOIN unnest($2::uuid[], $3::date[], $4::bigint[]) AS s(id, accounting_period, row_version)
           ON t.id = s.id AND t.accounting_period = s.accounting_period
         WHERE t.treaty_id = {treaty_sql}"
    ))
    .bind(header.clearance_id)
    .bind(&ids)
    .bind(&periods)
    .bind(&versions)
    .execute(&mut *tx)
    .await
    .context("writing the clearance lines")?;

    let accounts: Vec<&str> = posting.lines.iter().map(|l| l.account.as_str()).collect();
    let debits: Vec<Decimal> = posting.lines.iter().map(|l| l.debit.as_decimal()).collect();
    let credits: Vec<Decimal> = posting.lines.iter().map(|l| l.credit.as_decimal()).collect();
    sqlx::query(
        "INSERT INTO journal_entries (clearance_id, account, debit, credit, currency)
         SELECT $1, a, d, c, $5 FROM unnest($2::text[], $3::numeric[], $4::numeric[]) AS j(a, d, c)",
    )
    .bind(header.clearance_id)
    .bind(&accounts)
    .bind(&debits)
    .bind(&credits)
    .bind(check.currency.as_str())
    .execute(&mut *tx)
    .await
    .context("writing the journal")?;

    // Last, so the treaty's scope row is locked only until the commit.
    let scope_version: i64 = sqlx::query_scalar(
        "INSERT INTO scope_versions AS s (treaty_id, version) VALUES ($1, 1)
         ON CONFLICT (treaty_id) DO UPDATE SET version = s.version + 1, updated_at = now()
         RETURNING version",
    )
    .bind(treaty.as_str())
    .fetch_one(&mut *tx)
    .await
    .context("bumping the scope version")?;
    tx.commit().await.context("committing the clearance")?;
    Ok(Posted { rows: cleared, scope_version })
}
