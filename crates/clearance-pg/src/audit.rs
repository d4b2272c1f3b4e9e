//! The ledger's invariants as queries: what a reconciliation, a test or the
//! benchmark's concurrency run checks after the fact. Each query counts the
//! rows that break one invariant; a sound ledger answers 0 to every one.
//!
//! A clearance is *live* until it is reversed. A transaction may appear in
//! several clearances over time (cleared, reversed, cleared again), but in
//! at most one live clearance, and it is `cleared` exactly when it does.

use sqlx::PgPool;

/// One invariant and the query counting what breaks it.
pub struct Invariant {
    pub name: &'static str,
    sql: &'static str,
}

/// Every invariant of the clearance ledger.
pub const INVARIANTS: [Invariant; 8] = [
    Invariant {
        name: "transaction in two live clearances (cleared twice)",
        sql: "SELECT count(*) FROM (
                SELECT l.transaction_id FROM clearance_lines l
                WHERE NOT EXISTS (SELECT 1 FROM clearance_reversals r WHERE r.clearance_id = l.clearance_id)
                GROUP BY 1 HAVING count(*) > 1) twice",
    },
    Invariant {
        name: "live clearance line whose row is not cleared by that clearance (partial clearance)",
        sql: "SELECT count(*) FROM clearance_lines l
              WHERE NOT EXISTS (SELECT 1 FROM clearance_reversals r WHERE r.clearance_id = l.clearance_id)
                AND NOT EXISTS (
                    SELECT 1 FROM transactions t
                    WHERE t.treaty_id = l.treaty_id AND t.accounting_period = l.accounting_period
                      AND t.id = l.transaction_id AND t.status = 'cleared' AND t.clearance_id = l.clearance_id)",
    },
    Invariant {
        name: "cleared row without a line in a live clearance",
        sql: "SELECT count(*) FROM transactions t
              WHERE t.status = 'cleared'
                AND NOT EXISTS (
                    SELECT 1 FROM clearance_lines l
                    WHERE l.clearance_id = t.clearance_id AND l.transaction_id = t.id
                      AND NOT EXISTS (SELECT 1 FROM clearance_reversals r WHERE r.clearance_id = l.clearance_id))",
    },
    Invariant {
        name: "clearance whose header does not add up (row count, cleared total, check = cleared + difference)",
        sql: "SELECT count(*) FROM clearances c
              LEFT JOIN LATERAL (
                  SELECT count(*) AS n, coalesce(sum(amount), 0) AS total
                  FROM clearance_lines l WHERE l.clearance_id = c.clearance_id) lines ON true
              WHERE c.row_count <> lines.n OR c.cleared_total <> lines.total
                 OR c.cleared_total + c.difference <> c.check_amount",
    },
    Invariant {
        name: "journal posting that does not balance (a clearance's or a reversal's)",
        sql: "SELECT count(*) FROM (
                SELECT clearance_id, reversal_id FROM journal_entries
                GROUP BY 1, 2 HAVING sum(debit) <> sum(credit)) unbalanced",
    },
    Invariant {
        name: "clearance or reversal without its journal posting",
        sql: "SELECT (SELECT count(*) FROM clearances c WHERE NOT EXISTS (
                        SELECT 1 FROM journal_entries j WHERE j.clearance_id = c.clearance_id AND j.reversal_id IS NULL))
                   + (SELECT count(*) FROM clearance_reversals r WHERE NOT EXISTS (
                        SELECT 1 FROM journal_entries j WHERE j.reversal_id = r.reversal_id))",
    },
    Invariant {
        name: "row left pending (a job neither finalized nor compensated)",
        sql: "SELECT count(*) FROM transactions WHERE status = 'pending'",
    },
    Invariant {
        name: "clearance line without its header",
        sql: "SELECT count(*) FROM clearance_lines l
              WHERE NOT EXISTS (SELECT 1 FROM clearances c WHERE c.clearance_id = l.clearance_id)",
    },
];

/// The count of rows breaking each invariant, in [`INVARIANTS`] order. Run
/// it when no job is running: a running job's rows are pending by design.
///
/// # Errors
/// When a query fails.
pub async fn violations(pool: &PgPool) -> Result<Vec<(&'static str, i64)>, sqlx::Error> {
    let mut counts = Vec::with_capacity(INVARIANTS.len());
    for invariant in &INVARIANTS {
        counts.push((invariant.name, sqlx::query_scalar(invariant.sql).fetch_one(pool).await?));
    }
    Ok(counts)
}
