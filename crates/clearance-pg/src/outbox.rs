//! The transactional outbox on PostgreSQL (ADR 0010): [`record`] writes an
//! event inside the ledger transaction that commits it; [`claim`] and
//! [`settle`] are the drain's side, shared by both ledger adapters.

use anyhow::Context;
use clearance_core::outbox::ClearanceEvent;
use clearance_core::ports::{BackendError, LedgerWriteError};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::clear::db;

/// Writes `event` to the outbox in the caller's transaction; an event
/// already there (a retried step) is left as it is.
///
/// # Errors
/// Database errors.
pub(crate) async fn record(
    tx: &mut Transaction<'_, Postgres>,
    event: &ClearanceEvent,
) -> Result<(), LedgerWriteError> {
    sqlx::query(
        "INSERT INTO event_outbox (event_id, clearance_id, kind, detail) VALUES ($1, $2, $3, $4)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event.event_id)
    .bind(event.clearance_id)
    .bind(event.kind.as_str())
    .bind(sqlx::types::Json(event))
    .execute(&mut **tx)
    .await
    .context("writing the event to the outbox")
    .map_err(db)?;
    Ok(())
}

fn backend(err: impl Into<anyhow::Error>) -> BackendError {
    crate::backend(err.into())
}

/// Claims events for a drain: see [`clearance_core::outbox::EventOutbox::claim`].
/// One statement: the oldest unpublished, unclaimed events, of each
/// clearance only its oldest unpublished one, skipping rows another drainer
/// is claiming right now. Two spellings, so that each plans on its own
/// partial index (a generic plan of `$1 IS NULL OR ...` would not).
pub(crate) async fn claim(
    pool: &PgPool,
    only: Option<Uuid>,
    limit: u32,
    claim_secs: u32,
) -> Result<Vec<ClearanceEvent>, BackendError> {
    let which = if only.is_some() { "c.clearance_id = $1" } else { "$1::uuid IS NULL" };
    let rows: Vec<(i64, sqlx::types::Json<ClearanceEvent>)> = sqlx::query_as(&format!(
        "WITH picked AS MATERIALIZED (
             SELECT c.seq FROM event_outbox c
             WHERE c.published_at IS NULL AND {which}
               AND (c.claimed_until IS NULL OR c.claimed_until < now())
               AND NOT EXISTS (
                   SELECT 1 FROM event_outbox e
                   WHERE e.clearance_id = c.clearance_id AND e.published_at IS NULL AND e.seq < c.seq)
             ORDER BY c.seq
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         UPDATE event_outbox o SET claimed_until = now() + make_interval(secs => $3)
         FROM picked WHERE o.seq = picked.seq
         RETURNING o.seq, o.detail"
    ))
    .bind(only)
    .bind(i64::from(limit))
    .bind(f64::from(claim_secs))
    .fetch_all(pool)
    .await
    .context("claiming outbox events")
    .map_err(backend)?;
    let mut rows = rows;
    rows.sort_unstable_by_key(|r| r.0);
    Ok(rows.into_iter().map(|(_, event)| event.0).collect())
}

/// Records a drain's outcome: see [`clearance_core::outbox::EventOutbox::settle`].
pub(crate) async fn settle(
    pool: &PgPool,
    published: &[Uuid],
    unpublished: &[Uuid],
) -> Result<(), BackendError> {
    if published.is_empty() && unpublished.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE event_outbox o
         SET published_at = CASE WHEN s.published THEN now() END, claimed_until = NULL
         FROM unnest($1::uuid[], $2::bool[]) AS s(event_id, published)
         WHERE o.event_id = s.event_id AND o.published_at IS NULL",
    )
    .bind(published.iter().chain(unpublished).copied().collect::<Vec<Uuid>>())
    .bind(published.iter().map(|_| true).chain(unpublished.iter().map(|_| false)).collect::<Vec<bool>>())
    .execute(pool)
    .await
    .context("recording published events")
    .map_err(backend)?;
    Ok(())
}
