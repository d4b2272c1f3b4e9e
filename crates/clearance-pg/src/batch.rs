//! The ledger's side of batch clearing (ADR 0006). A job's rows carry its
//! clearance id while pending, so every step finds them again and every
//! step is idempotent:
//! - reserve: rows open at the snapshot's version go open→pending for the
//!   job in one statement, rows already pending for the job are left alone,
//!   anything else is a conflict (nothing written);
//! - finalize: the job's pending rows go pending→cleared and the clearance
//!   is written, once (its id is the job's clearance id);
//! - release: the job's pending rows open again.
//!
//! Rows are locked in (period, id) order in every step, as in the sync
//! guard, so jobs and sync clearances never deadlock.

use anyhow::Context;
use chrono::NaiveDate;
use clearance_core::batch::{BatchLedger, JobScope, Release};
use clearance_core::clearance::{Check, ClearanceHeader, Posting, SnapshotRowRef};
use clearance_core::outbox::{ClearanceEvent, EventKind, EventOutbox};
use clearance_core::ports::BackendError;
use clearance_core::ports::{LedgerWriteError, Posted};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::clear::{
    bump_scope, db, key_lookups_only, moved_rows, reserve_open_rows, treaty_literal, write_journal, RowKeys,
};

#[derive(Clone)]
pub struct PgBatchLedger {
    pool: PgPool,
}

impl PgBatchLedger {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// `AND t.accounting_period BETWEEN '...' AND '...'`: dates are formatted by
/// chrono, so the literal cannot be escaped; it prunes to the job's years.
fn period_literals(scope: &JobScope) -> String {
    format!(
        "t.accounting_period BETWEEN DATE '{}' AND DATE '{}'",
        scope.first_period.format("%Y-%m-%d"),
        scope.last_period.format("%Y-%m-%d")
    )
}

/// Whether the job's clearance is in the ledger (committed, or written by
/// this transaction).
async fn is_posted(tx: &mut Transaction<'_, Postgres>, clearance_id: Uuid) -> Result<bool, LedgerWriteError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM clearances WHERE clearance_id = $1)")
        .bind(clearance_id)
        .fetch_one(&mut **tx)
        .await
        .context("checking whether the job's clearance is posted")
        .map_err(db)
}

/// Locks the job's pending rows in (period, id) order; returns them.
async fn lock_pending(
    tx: &mut Transaction<'_, Postgres>,
    scope: &JobScope,
) -> Result<Vec<(Uuid, NaiveDate, i64, Decimal)>, LedgerWriteError> {
    sqlx::query_as(&format!(
        "SELECT t.id, t.accounting_period, t.row_version, t.amount FROM transactions t
         WHERE t.treaty_id = {} AND {} AND t.clearance_id = $1 AND t.status = 'pending'
         ORDER BY t.accounting_period, t.id
         FOR UPDATE",
        treaty_literal(&scope.treaty),
        period_literals(scope)
    ))
    .bind(scope.clearance_id)
    .fetch_all(&mut **tx)
    .await
    .context("locking the job's pending rows")
    .map_err(db)
}

impl BatchLedger for PgBatchLedger {
    async fn reserve(&self, scope: &JobScope, rows: &[SnapshotRowRef]) -> Result<u64, LedgerWriteError> {
        let keys = RowKeys::in_lock_order(rows);
        let mut tx = self.pool.begin().await.context("starting a reservation").map_err(db)?;
        key_lookups_only(&mut tx).await?;
        let reserved = reserve_open_rows(&mut tx, &scope.treaty, scope.clearance_id, &keys).await?;
        if reserved != keys.len() {
            // The rest must be this job's already (a retried or re-delivered
            // chunk); anything else moved, and nothing is kept.
            let moved = moved_rows(&mut *tx, &scope.treaty, &keys, scope.clearance_id).await?;
            if !moved.is_empty() {
                tx.rollback().await.context("rolling back a stale reservation").map_err(db)?;
                return Err(LedgerWriteError::StaleRows(moved));
            }
        }
        if reserved == 0 {
            return Ok(0);
        }
        bump_scope(&mut tx, &scope.treaty).await?;
        crate::closes::refuse_closed(&mut tx, &scope.treaty, &keys.periods).await?;
        tx.commit().await.context("committing a reservation").map_err(db)?;
        Ok(reserved)
    }

    async fn finalize(
        &self,
        scope: &JobScope,
        row_count: u64,
        check: &Check,
        posting: &Posting,
        header: &ClearanceHeader,
    ) -> Result<Posted, LedgerWriteError> {
        let treaty_sql = treaty_literal(&scope.treaty);
        let mut tx = self.pool.begin().await.context("starting a finalize").map_err(db)?;
        crate::clear::plan_once(&mut tx).await?;
        if is_posted(&mut tx, scope.clearance_id).await? {
            return Ok(Posted::already(scope.clearance_id));
        }
        let pending = lock_pending(&mut tx, scope).await?;
        let total: Decimal = pending.iter().map(|p| p.3).sum();
        if pending.len() as u64 != row_count || total != posting.cleared_total.as_decimal() {
            return Err(crate::clear::invariant(format!(
                "job clearance {}: {} pending rows totalling {total}, the plan says {row_count} rows totalling {}",
                scope.clearance_id,
                pending.len(),
                posting.cleared_total
            )));
        }
        crate::clear::insert_header(&mut tx, &scope.treaty, row_count, check, posting, header).await?;
        let ids: Vec<Uuid> = pending.iter().map(|p| p.0).collect();
        let periods: Vec<NaiveDate> = pending.iter().map(|p| p.1).collect();
        let versions: Vec<i64> = pending.iter().map(|p| p.2).collect();
        let amounts: Vec<Decimal> = pending.iter().map(|p| p.3).collect();
        crate::clear::insert_lines(
            &mut tx,
            scope.clearance_id,
            &scope.treaty,
            &ids,
            &periods,
            &amounts,
            &versions,
        )
        .await?;
        let cleared = sqlx::query(&format!(
            "UPDATE transactions t SET status = 'cleared', row_version = t.row_version + 1
             WHERE t.treaty_id = {treaty_sql} AND {} AND t.clearance_id = $1 AND t.status = 'pending'",
            period_literals(scope)
        ))
        .bind(scope.clearance_id)
        .execute(&mut *tx)
        .await
        .context("clearing the job's rows")
        .map_err(db)?
        .rows_affected();
        assert_eq!(cleared, row_count, "cleared rows must equal the job's pending rows under the locks");
        write_journal(&mut tx, scope.clearance_id, check, posting).await?;
        let event = ClearanceEvent::new(
            EventKind::ClearancePosted,
            scope.clearance_id,
            Some(scope.job_id),
            scope.treaty.as_str(),
            &header.operator_id,
            row_count,
        );
        crate::outbox::record(&mut tx, &event).await?;
        let scope_version = bump_scope(&mut tx, &scope.treaty).await?;
        crate::closes::refuse_closed(&mut tx, &scope.treaty, &periods).await?;
        tx.commit().await.context("committing a finalize").map_err(db)?;
        Ok(Posted { clearance_id: scope.clearance_id, rows: cleared, scope_version, already_posted: false })
    }

    async fn release(&self, scope: &JobScope, failed: &ClearanceEvent) -> Result<Release, LedgerWriteError> {
        let treaty_sql = treaty_literal(&scope.treaty);
        let mut tx = self.pool.begin().await.context("starting a release").map_err(db)?;
        // Holding the pending rows first: a finalize still committing has
        // them locked, so this waits for it, and the check below (a new
        // statement under READ COMMITTED) sees its clearance.
        let pending = lock_pending(&mut tx, scope).await?;
        if is_posted(&mut tx, scope.clearance_id).await? {
            return Ok(Release::ClearancePosted);
        }
        crate::outbox::record(&mut tx, failed).await?;
        if pending.is_empty() {
            tx.commit().await.context("committing a release").map_err(db)?;
            return Ok(Release::Released(Posted::already(scope.clearance_id)));
        }
        let released = sqlx::query(&format!(
            "UPDATE transactions t SET status = 'open', clearance_id = NULL, row_version = t.row_version + 1
             WHERE t.treaty_id = {treaty_sql} AND {} AND t.clearance_id = $1 AND t.status = 'pending'",
            period_literals(scope)
        ))
        .bind(scope.clearance_id)
        .execute(&mut *tx)
        .await
        .context("releasing the job's rows")
        .map_err(db)?
        .rows_affected();
        assert_eq!(released, pending.len() as u64, "released rows must equal the locked pending rows");
        let scope_version = bump_scope(&mut tx, &scope.treaty).await?;
        tx.commit().await.context("committing a release").map_err(db)?;
        Ok(Release::Released(Posted {
            clearance_id: scope.clearance_id,
            rows: released,
            scope_version,
            already_posted: false,
        }))
    }
}

impl EventOutbox for PgBatchLedger {
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
