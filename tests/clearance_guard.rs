//! The clearance guard in PostgreSQL alone (no DynamoDB check in front of
//! it): stale rows refused with exactly the moved ids, disjoint operators
//! never in each other's way, overlapping operators never clearing a row
//! twice and never deadlocking.

use std::sync::Arc;

use chrono::NaiveDate;
use clearance_core::clearance::{Check, Posting};
use clearance_core::ports::LedgerWriteError;
use clearance_core::{Amount, Currency, TreatyId};
use clearance_loader::generate::Generator;
use clearance_pg::clear::{post_clearance, ClearanceHeader, SnapshotRowRef};
use clearance_tests::TestDb;
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Clone, Copy)]
struct Row {
    r: SnapshotRowRef,
    amount: Decimal,
}

/// Open USD rows of TR-0001 as a snapshot would record them.
async fn snapshot(pool: &PgPool, limit: i64) -> anyhow::Result<Vec<Row>> {
    let rows: Vec<(Uuid, NaiveDate, i64, Decimal)> = sqlx::query_as(
        "SELECT id, accounting_period, row_version, amount FROM transactions
         WHERE treaty_id = 'TR-0001' AND status = 'open' AND currency = 'USD' ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, accounting_period, row_version, amount)| Row {
            r: SnapshotRowRef { id, accounting_period, row_version },
            amount,
        })
        .collect())
}

async fn clear(pool: &PgPool, rows: &[Row], key: &str) -> Result<u64, LedgerWriteError> {
    let total: Decimal = rows.iter().map(|r| r.amount).sum();
    // Checks are positive; a selection netting to zero or less is paid by a
    // nominal check with the difference booked.
    let (amount, allow) = if total > Decimal::ZERO { (total, false) } else { (Decimal::new(100, 2), true) };
    let check = Check {
        number: format!("CHK-{key}"),
        amount: Amount::from_decimal(amount).map_err(|e| {
            LedgerWriteError::Backend(clearance_core::ports::BackendError::new(e.to_string()))
        })?,
        currency: Currency::parse("USD").map_err(|e| {
            LedgerWriteError::Backend(clearance_core::ports::BackendError::new(e.to_string()))
        })?,
        received_on: NaiveDate::from_ymd_opt(2024, 5, 31).unwrap_or_default(),
    };
    let usd = check.currency;
    let posting = Posting::plan(
        &check,
        rows.iter().map(|r| (Amount::from_decimal(r.amount).unwrap_or(Amount::ZERO), usd)),
        allow,
    )
    .map_err(|e| LedgerWriteError::Backend(clearance_core::ports::BackendError::new(e.to_string())))?;
    let header = ClearanceHeader {
        clearance_id: clearance_core::clearance::clearance_id_for("op", key),
        operator_id: "op".into(),
        snapshot_id: "s".repeat(64),
        snapshot_filter: "{}".into(),
        version_token: "v1.".into(),
        idempotency_key: key.into(),
        request_hash: clearance_core::idempotency::request_hash("POST", "/v1/clearances", key.as_bytes()),
    };
    let treaty = TreatyId::parse("TR-0001")
        .map_err(|e| LedgerWriteError::Backend(clearance_core::ports::BackendError::new(e.to_string())))?;
    let refs: Vec<SnapshotRowRef> = rows.iter().map(|r| r.r).collect();
    post_clearance(pool, &treaty, &refs, &check, &posting, &header).await.map(|p| p.rows)
}

async fn count(pool: &PgPool, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

#[tokio::test]
async fn a_stale_selection_is_refused_with_exactly_the_moved_ids_and_nothing_written() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut Generator::new(9).with_rows(2_000)).await?;
    let rows = snapshot(&db.app, 10).await?;
    assert_eq!(clear(&db.app, &rows[0..3], "k1").await?, 3);

    let clearances = count(&db.owner, "SELECT count(*) FROM clearances").await?;
    let version = count(&db.owner, "SELECT version FROM scope_versions WHERE treaty_id = 'TR-0001'").await?;
    match clear(&db.app, &rows[2..6], "k2").await {
        Err(LedgerWriteError::StaleRows(moved)) => assert_eq!(moved, vec![rows[2].r.id]),
        other => panic!("expected a stale refusal, got {other:?}"),
    }
    assert_eq!(count(&db.owner, "SELECT count(*) FROM clearances").await?, clearances, "nothing written");
    assert_eq!(
        count(&db.owner, "SELECT version FROM scope_versions WHERE treaty_id = 'TR-0001'").await?,
        version
    );
    let open = count(
        &db.owner,
        &format!(
            "SELECT count(*) FROM transactions WHERE status = 'open' AND id IN ('{}', '{}', '{}')",
            rows[3].r.id, rows[4].r.id, rows[5].r.id
        ),
    )
    .await?;
    assert_eq!(open, 3, "the other rows of the refused selection are untouched");

    // A row whose version moved (but is open) is stale too.
    sqlx::query("UPDATE transactions SET row_version = row_version + 1 WHERE id = $1")
        .bind(rows[7].r.id)
        .execute(&db.app)
        .await?;
    match clear(&db.app, &rows[6..9], "k3").await {
        Err(LedgerWriteError::StaleRows(moved)) => assert_eq!(moved, vec![rows[7].r.id]),
        other => panic!("expected a stale refusal, got {other:?}"),
    }
    db.drop_db().await
}

#[tokio::test]
async fn concurrent_operators_never_clear_a_row_twice_nor_deadlock_and_disjoint_ones_all_succeed(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut Generator::new(9).with_rows(20_000)).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect_with(db.app.connect_options().as_ref().clone())
        .await?;
    let rows = Arc::new(snapshot(&pool, 400).await?);

    // Disjoint selections: every one commits.
    let mut disjoint = Vec::new();
    for op in 0..8 {
        let (pool, rows) = (pool.clone(), Arc::clone(&rows));
        disjoint.push(tokio::spawn(async move {
            clear(&pool, &rows[op * 10..op * 10 + 10], &format!("d{op}")).await
        }));
    }
    for task in disjoint {
        assert_eq!(task.await?.map_err(|e| anyhow::anyhow!("{e:#}"))?, 10);
    }

    // Overlapping selections from the rest: 16 operators x 12 attempts.
    let mut tasks = Vec::new();
    for op in 0..16_u64 {
        let (pool, rows) = (pool.clone(), Arc::clone(&rows));
        tasks.push(tokio::spawn(async move {
            let mut outcomes = (0_u64, 0_u64);
            let mut state = op.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            for attempt in 0..12 {
                let mut pick = Vec::new();
                for _ in 0..15 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let i = 80 + (state % 320) as usize;
                    if !pick.iter().any(|r: &Row| r.r.id == rows[i].r.id) {
                        pick.push(rows[i]);
                    }
                }
                match clear(&pool, &pick, &format!("o{op}-{attempt}")).await {
                    Ok(n) => {
                        assert_eq!(n as usize, pick.len());
                        outcomes.0 += 1;
                    }
                    Err(LedgerWriteError::StaleRows(moved)) => {
                        assert!(!moved.is_empty());
                        outcomes.1 += 1;
                    }
                    Err(other) => return Err(anyhow::anyhow!("neither committed nor stale: {other:#}")),
                }
            }
            anyhow::Ok(outcomes)
        }));
    }
    let (mut committed, mut stale) = (0, 0);
    for task in tasks {
        let (c, s) = task.await??;
        committed += c;
        stale += s;
    }
    assert_eq!(committed + stale, 16 * 12);
    assert!(
        committed > 0 && stale > 0,
        "the selections really overlapped: {committed} committed, {stale} stale"
    );

    let twice = count(
        &db.owner,
        "SELECT count(*) FROM (SELECT transaction_id FROM clearance_lines GROUP BY 1 HAVING count(*) > 1) x",
    )
    .await?;
    assert_eq!(twice, 0, "no transaction cleared twice");
    let lines = count(&db.owner, "SELECT count(*) FROM clearance_lines").await?;
    let cleared = count(&db.owner, "SELECT count(*) FROM transactions WHERE status = 'cleared'").await?;
    assert_eq!(lines, cleared, "every cleared row has exactly its line");
    let unbalanced = count(
        &db.owner,
        "SELECT count(*) FROM (SELECT clearance_id FROM journal_entries GROUP BY 1 HAVING sum(debit) <> sum(credit)) x",
    )
    .await?;
    assert_eq!(unbalanced, 0);
    let mismatched = count(
        &db.owner,
        "SELECT count(*) FROM clearances c
         WHERE c.cleared_total <> (SELECT sum(amount) FROM clearance_lines l WHERE l.clearance_id = c.clearance_id)
            OR c.row_count <> (SELECT count(*) FROM clearance_lines l WHERE l.clearance_id = c.clearance_id)",
    )
    .await?;
    assert_eq!(mismatched, 0, "each clearance is all-or-nothing and adds up");
    pool.close().await;
    db.drop_db().await
}
