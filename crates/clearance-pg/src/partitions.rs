//! Partition maintenance of `transactions`: the year partitions are created
//! on demand by `ensure_period_partitions()` (a SQL function, see the first
//! migration); this module calls it and describes what exists.

use anyhow::Context;
use sqlx::{PgConnection, PgPool};

/// Hash sub-partitions per year. Fixed for the table's life: the SQL
/// function holds the same number, and changing it means re-partitioning.
pub const TRANSACTION_HASH_MODULUS: u32 = 8;

/// Creates the year partitions from `year_from` to `year_to` that are missing.
/// Takes a lock on `transactions` only when it actually creates one.
///
/// # Errors
/// When the range is out of bounds or the DDL fails.
pub async fn ensure_years(conn: &mut PgConnection, year_from: i32, year_to: i32) -> anyhow::Result<i32> {
    sqlx::query_scalar::<_, i32>("SELECT ensure_period_partitions($1, $2)")
        .bind(year_from)
        .bind(year_to)
        .fetch_one(conn)
        .await
        .with_context(|| format!("creating partitions for {year_from}..={year_to}"))
}

/// One leaf partition of `transactions` and its row count.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub name: String,
    pub rows: i64,
}

/// Every leaf partition of `transactions` with its exact row count, in name
/// order. Reads every leaf: for summaries and tests, not for request paths.
///
/// # Errors
/// When the catalog query fails.
pub async fn leaves(pool: &PgPool) -> anyhow::Result<Vec<Leaf>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT relid::regclass::text FROM pg_partition_tree('transactions') WHERE isleaf ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .context("listing partitions")?;
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT tableoid::regclass::text, count(*) FROM transactions GROUP BY 1")
            .fetch_all(pool)
            .await
            .context("counting rows per partition")?;
    Ok(names
        .into_iter()
        .map(|name| {
            let rows = counts.iter().find(|(n, _)| *n == name).map_or(0, |(_, c)| *c);
            Leaf { name, rows }
        })
        .collect())
}
