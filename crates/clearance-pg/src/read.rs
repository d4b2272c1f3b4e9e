//! The read side of the ledger: the scope-version read every search makes,
//! and the one pruned, streamed read that materializes a snapshot.

use anyhow::Context;
use chrono::NaiveDate;
use clearance_core::closes::ClosedPeriod;
use clearance_core::ports::{BackendError, RowStream};
use clearance_core::snapshot::{SearchFilter, StatusFilter, VersionToken};
use clearance_core::{Amount, CedentId, Currency, LedgerRow, Period, TransactionId, TreatyId, TxnStatus};
use futures_util::{Stream, StreamExt};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

/// The current version token of a filter's treaties: one primary-key read of
/// `scope_versions`. A treaty without a row (no data yet) has version 0.
///
/// # Errors
/// When the query fails.
pub async fn version_token<'c, E>(executor: E, filter: &SearchFilter) -> anyhow::Result<VersionToken>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    let ids: Vec<&str> = filter.treaty_ids().map(TreatyId::as_str).collect();
    let found: Vec<(String, i64)> =
        sqlx::query_as("SELECT treaty_id, version FROM scope_versions WHERE treaty_id = ANY($1)")
            .bind(&ids)
            .fetch_all(executor)
            .await
            .context("reading scope versions")?;
    Ok(VersionToken::new(filter.treaty_ids().map(|t| {
        let version = found.iter().find(|(id, _)| id == t.as_str()).map_or(0, |(_, v)| *v);
        (t.clone(), version)
    })))
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    treaty_id: String,
    cedent_id: String,
    accounting_period: NaiveDate,
    txn_date: NaiveDate,
    amount: Decimal,
    currency: String,
    reference: String,
    status: String,
    row_version: i64,
}

impl TryFrom<Row> for LedgerRow {
    type Error = anyhow::Error;

    fn try_from(row: Row) -> anyhow::Result<Self> {
        Ok(Self {
            id: TransactionId(row.id),
            treaty_id: TreatyId::parse(&row.treaty_id)?,
            cedent_id: CedentId::parse(&row.cedent_id)?,
            accounting_period: Period::from_first_day(row.accounting_period)?,
            txn_date: row.txn_date,
            amount: Amount::from_decimal(row.amount)?,
            currency: Currency::parse(&row.currency)?,
            reference: row.reference,
            status: TxnStatus::parse(&row.status)?,
            row_version: row.row_version,
        })
    }
}

/// The snapshot read. Binds: treaty ids, period bounds (first days), cedent
/// ids (empty = all), statuses, currency (NULL = all).
pub const SNAPSHOT_ROWS_SQL: &str = "SELECT id, treaty_id, cedent_id, accounting_period, txn_date, amount,
        currency::text AS currency, reference, status::text AS status, row_version
    FROM transactions
    WHERE treaty_id = ANY($1) AND accounting_period BETWEEN $2 AND $3
      AND (cardinality($4::text[]) = 0 OR cedent_id = ANY($4))
      AND status = ANY($5::txn_status[])
      AND ($6::text IS NULL OR currency = $6)
    ORDER BY treaty_id, accounting_period, id";

/// The rows of a filter, streamed in primary-key order (treaty, period, id):
/// never collected, so memory stays flat whatever the row count. The pool
/// must come from [`crate::connect`] (custom plans: see
/// [`crate::session_options`]) for the hash leaves to be pruned.
pub fn stream_rows<'a, E>(
    executor: E,
    filter: &SearchFilter,
) -> impl Stream<Item = anyhow::Result<LedgerRow>> + 'a
where
    E: sqlx::Executor<'a, Database = Postgres> + 'a,
{
    let treaties: Vec<String> = filter.treaty_ids().map(|t| t.to_string()).collect();
    let cedents: Vec<String> = filter.cedent_ids().map(|c| c.to_string()).collect();
    let statuses: Vec<&'static str> = match filter.status() {
        StatusFilter::Open => vec!["open"],
        StatusFilter::Cleared => vec!["cleared"],
        StatusFilter::All => vec!["open", "pending", "cleared"],
    };
    let currency = filter.currency().map(|c| c.as_str().to_owned());
    let (from, to) = (filter.period_from().first_day(), filter.period_to().first_day());
    sqlx::query_as::<_, Row>(SNAPSHOT_ROWS_SQL)
        .bind(treaties)
        .bind(from)
        .bind(to)
        .bind(cedents)
        .bind(statuses)
        .bind(currency)
        .fetch(executor)
        .map(|row| row.context("streaming the snapshot rows").and_then(LedgerRow::try_from))
}

/// Rows a snapshot read hands over at a time, and batches it may run ahead
/// of the consumer: memory stays bounded (about 2 x 512 rows in flight).
const SNAPSHOT_BATCH_ROWS: usize = 512;
const SNAPSHOT_BATCHES_AHEAD: usize = 2;

/// The version token and the rows of a filter from one repeatable-read,
/// read-only transaction: the token is the rows' state. A task of its own
/// owns the transaction and streams the rows to the returned stream in
/// bounded batches; dropping the stream ends the task and the transaction.
///
/// # Errors
/// When the transaction or the token read fails (a row that fails later is
/// an error item).
pub async fn read_snapshot(
    pool: &PgPool,
    filter: &SearchFilter,
) -> anyhow::Result<(VersionToken, impl Stream<Item = anyhow::Result<LedgerRow>> + Send + 'static)> {
    let mut tx = pool.begin().await.context("starting the snapshot read")?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .context("making the snapshot read repeatable")?;
    let token = version_token(&mut *tx, filter).await?;
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Vec<anyhow::Result<LedgerRow>>>(SNAPSHOT_BATCHES_AHEAD);
    let filter = filter.clone();
    tokio::spawn(async move {
        {
            let mut rows = stream_rows(&mut *tx, &filter);
            let mut batch = Vec::with_capacity(SNAPSHOT_BATCH_ROWS);
            while let Some(row) = rows.next().await {
                batch.push(row);
                if batch.len() == SNAPSHOT_BATCH_ROWS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(SNAPSHOT_BATCH_ROWS));
                    if sender.send(full).await.is_err() {
                        return; // the reader stopped: the transaction rolls back on drop
                    }
                }
            }
            if !batch.is_empty() {
                let _ = sender.send(batch).await;
            }
        }
        // Read only: nothing to keep.
        let _ = tx.rollback().await;
    });
    let batches = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|batch| (batch, receiver))
    });
    Ok((token, batches.flat_map(futures_util::stream::iter)))
}

/// The ledger as the read path's port: a pool of the application role.
#[derive(Clone)]
pub struct PgLedgerReader {
    pool: PgPool,
}

impl PgLedgerReader {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// The closed periods of the filter's treaties in its period range: each
/// period's latest entry a close (ADR 0015).
///
/// # Errors
/// When the query fails or a stored value is not the domain's.
pub async fn closed_periods(pool: &PgPool, filter: &SearchFilter) -> anyhow::Result<Vec<ClosedPeriod>> {
    let treaties: Vec<&str> = filter.treaty_ids().map(TreatyId::as_str).collect();
    let rows: Vec<(String, NaiveDate)> = sqlx::query_as(
        "SELECT treaty_id, accounting_period FROM (
             SELECT DISTINCT ON (treaty_id, accounting_period) treaty_id, accounting_period, action
             FROM period_closes
             WHERE treaty_id = ANY($1) AND accounting_period BETWEEN $2 AND $3
             ORDER BY treaty_id, accounting_period, entry_id DESC) latest
         WHERE action = 'close'
         ORDER BY treaty_id, accounting_period",
    )
    .bind(&treaties)
    .bind(filter.period_from().first_day())
    .bind(filter.period_to().first_day())
    .fetch_all(pool)
    .await
    .context("reading the closed periods")?;
    rows.into_iter()
        .map(|(treaty_id, day)| {
            Ok(ClosedPeriod { treaty_id, period: Period::from_first_day(day)?.to_string() })
        })
        .collect()
}

impl clearance_core::ports::LedgerReader for PgLedgerReader {
    async fn version_token(&self, filter: &SearchFilter) -> Result<VersionToken, BackendError> {
        version_token(&self.pool, filter).await.map_err(crate::backend)
    }

    async fn read_snapshot<'a>(
        &'a self,
        filter: &SearchFilter,
    ) -> Result<(VersionToken, RowStream<'a>), BackendError> {
        let (token, rows) = read_snapshot(&self.pool, filter).await.map_err(crate::backend)?;
        let rows: RowStream<'a> = Box::pin(rows.map(|row| row.map_err(crate::backend)));
        Ok((token, rows))
    }

    async fn closed_periods(&self, filter: &SearchFilter) -> Result<Vec<ClosedPeriod>, BackendError> {
        closed_periods(&self.pool, filter).await.map_err(crate::backend)
    }
}
