//! Period close in the ledger (ADR 0015): the append-only `period_closes`
//! entries, and the check every posting transaction makes.
//!
//! The treaty's scope row orders a close against the postings of its
//! treaty: a close or reopen bumps it first, and every clearance,
//! reservation, finalize and reversal reads the periods' state right after
//! its own bump (the last write before its commit). Whichever bumps first
//! holds the row until it commits; the other waits, and under READ
//! COMMITTED its next statement sees what the first committed. So a posting
//! either commits before the close or sees it and is refused, never both.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clearance_core::closes::{PeriodAction, PeriodChange, PeriodEntry};
use clearance_core::period::Period;
use clearance_core::ports::LedgerWriteError;
use clearance_core::TreatyId;
use sqlx::{PgPool, Postgres, Transaction};

use crate::clear::{bump_scope, db, fingerprint, key_uses};

/// The periods among `periods` (first days) of `treaty` that are closed:
/// each one's latest entry is a close. Sorted. To be called after the
/// transaction's scope bump.
pub(crate) async fn closed_periods(
    tx: &mut Transaction<'_, Postgres>,
    treaty: &TreatyId,
    periods: &[NaiveDate],
) -> Result<Vec<NaiveDate>, LedgerWriteError> {
    let mut distinct = periods.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    sqlx::query_scalar(
        "SELECT p.day FROM unnest($2::date[]) AS p(day)
         CROSS JOIN LATERAL (
             SELECT c.action FROM period_closes c
             WHERE c.treaty_id = $1 AND c.accounting_period = p.day
             ORDER BY c.entry_id DESC LIMIT 1
         ) latest
         WHERE latest.action = 'close'
         ORDER BY p.day",
    )
    .bind(treaty.as_str())
    .bind(&distinct)
    .fetch_all(&mut **tx)
    .await
    .context("reading whether the rows' periods are closed")
    .map_err(db)
}

/// Refuses the transaction's posting when any of `periods` is closed.
pub(crate) async fn refuse_closed(
    tx: &mut Transaction<'_, Postgres>,
    treaty: &TreatyId,
    periods: &[NaiveDate],
) -> Result<(), LedgerWriteError> {
    let closed = closed_periods(tx, treaty, periods).await?;
    if closed.is_empty() {
        Ok(())
    } else {
        Err(LedgerWriteError::PeriodClosed(closed))
    }
}

type EntryRow = (String, NaiveDate, String, String, String, DateTime<Utc>, Option<String>);

fn entry_of(row: EntryRow, scope_version: i64) -> Result<PeriodEntry, LedgerWriteError> {
    let stored = |what: &str| db(anyhow::anyhow!("a stored period entry: {what}"));
    Ok(PeriodEntry {
        treaty: TreatyId::parse(&row.0).map_err(|_| stored("treaty"))?,
        period: Period::from_first_day(row.1).map_err(|_| stored("period"))?,
        action: PeriodAction::parse(&row.2).ok_or_else(|| stored("action"))?,
        reason: row.3,
        operator_id: row.4,
        at: row.5,
        scope_version,
    })
}

/// Writes a close or a reopen: see [`clearance_core::ports::ClearanceLedger::change_period`].
pub async fn change_period(pool: &PgPool, change: &PeriodChange) -> Result<PeriodEntry, LedgerWriteError> {
    let mut tx = pool.begin().await.context("starting a period change").map_err(db)?;
    // The scope row first: concurrent changes of the treaty's periods and
    // its postings queue here (see the module's doc).
    let scope_version = bump_scope(&mut tx, &change.treaty).await?;
    let uses = key_uses(&mut *tx, &change.operator_id, &change.idempotency_key).await?;
    if !uses.is_empty() {
        let ours = uses.iter().all(|u| u.kind == "period" && u.same_request(&change.request_hash));
        if !ours {
            return Err(LedgerWriteError::KeyBoundElsewhere);
        }
        let row: EntryRow = sqlx::query_as(
            "SELECT treaty_id, accounting_period, action, reason, operator_id, created_at, request_hash
             FROM period_closes WHERE operator_id = $1 AND idempotency_key = $2",
        )
        .bind(&change.operator_id)
        .bind(&change.idempotency_key)
        .fetch_one(&mut *tx)
        .await
        .context("reading the period entry of a key")
        .map_err(db)?;
        // Read only: the bump is rolled back with the transaction.
        return entry_of(row, 0);
    }
    let day = change.period.first_day();
    let closed = !closed_periods(&mut tx, &change.treaty, &[day]).await?.is_empty();
    match (change.action, closed) {
        (PeriodAction::Close, true) => return Err(LedgerWriteError::PeriodAlreadyClosed),
        (PeriodAction::Reopen, false) => return Err(LedgerWriteError::PeriodNotClosed),
        _ => {}
    }
    let row: EntryRow = sqlx::query_as(
        "INSERT INTO period_closes (treaty_id, accounting_period, action, reason, operator_id, idempotency_key,
            request_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING treaty_id, accounting_period, action, reason, operator_id, created_at, request_hash",
    )
    .bind(change.treaty.as_str())
    .bind(day)
    .bind(change.action.as_str())
    .bind(&change.reason)
    .bind(&change.operator_id)
    .bind(&change.idempotency_key)
    .bind(fingerprint(&change.request_hash))
    .fetch_one(&mut *tx)
    .await
    .context("writing the period entry")
    .map_err(db)?;
    tx.commit().await.context("committing the period change").map_err(db)?;
    entry_of(row, scope_version)
}
