//! The clearance ledger is append-only for the application role, and every
//! journal posting balances.

use clearance_tests::{sqlstate, TestDb};
use sqlx::PgPool;
use uuid::Uuid;

const PERMISSION_DENIED: &str = "42501";

async fn post_clearance(
    pool: &PgPool,
    debit_cash: &str,
    credit_receivable: &str,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO clearances (clearance_id, treaty_id, check_number, check_amount, currency, received_on,
            cleared_total, difference, row_count, operator_id, snapshot_id, snapshot_filter, version_token, idempotency_key)
         VALUES ($1, 'TR-0001', 'CHK-1', 100.00, 'USD', '2024-05-31', 100.00, 0, 1, 'op-a', 'snap', '{}', 'tok', $2)",
    )
    .bind(id)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO clearance_lines (clearance_id, transaction_id, treaty_id, accounting_period, amount, row_version)
         VALUES ($1, gen_random_uuid(), 'TR-0001', '2024-05-01', 100.00, 1)",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO journal_entries (clearance_id, account, debit, credit, currency)
         VALUES ($1, 'cash', $2::numeric, 0, 'USD'), ($1, 'receivable', 0, $3::numeric, 'USD')",
    )
    .bind(id)
    .bind(debit_cash)
    .bind(credit_receivable)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

#[tokio::test]
async fn the_application_role_gets_permission_denied_on_update_and_delete_of_ledger_rows(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    // The application role may append...
    let id = post_clearance(&db.app, "100.00", "100.00").await?;

    // ...and nothing else.
    for table in ["clearances", "clearance_lines", "clearance_reversals", "journal_entries"] {
        for sql in [
            format!("UPDATE {table} SET clearance_id = clearance_id WHERE clearance_id = $1"),
            format!("DELETE FROM {table} WHERE clearance_id = $1"),
        ] {
            let err = sqlx::query(&sql).bind(id).execute(&db.app).await.err();
            let state = err.as_ref().and_then(sqlstate);
            assert_eq!(state.as_deref(), Some(PERMISSION_DENIED), "{sql}: {err:?}");
            let message = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains("permission denied"), "{sql}: {message}");
        }
        let err = sqlx::query(&format!("TRUNCATE {table}")).execute(&db.app).await.err();
        assert_eq!(err.as_ref().and_then(sqlstate).as_deref(), Some(PERMISSION_DENIED), "TRUNCATE {table}");
    }

    // Even the owner cannot rewrite history: the trigger refuses it.
    let err =
        sqlx::query("DELETE FROM clearances WHERE clearance_id = $1").bind(id).execute(&db.owner).await.err();
    assert!(err.map(|e| e.to_string()).unwrap_or_default().contains("append-only"));

    let lines: i64 = sqlx::query_scalar("SELECT count(*) FROM journal_entries WHERE clearance_id = $1")
        .bind(id)
        .fetch_one(&db.owner)
        .await?;
    assert_eq!(lines, 2, "the posting is intact");
    db.drop_db().await
}

#[tokio::test]
async fn the_application_role_changes_only_the_clearing_columns_of_transactions() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut clearance_loader::generate::Generator::new(1).with_rows(10))
        .await?;
    for sql in [
        "UPDATE transactions SET amount = amount + 1",
        "DELETE FROM transactions",
        "INSERT INTO transactions (id, treaty_id, cedent_id, accounting_period, txn_date, amount, currency, source_ref)
         VALUES (gen_random_uuid(), 'TR-0001', 'C', '2024-01-01', '2024-01-01', 1, 'USD', 'x')",
        "SELECT ensure_period_partitions(2040, 2040)",
    ] {
        let err = sqlx::query(sql).execute(&db.app).await.err();
        assert_eq!(err.as_ref().and_then(sqlstate).as_deref(), Some(PERMISSION_DENIED), "{sql}: {err:?}");
    }
    let changed =
        sqlx::query("UPDATE transactions SET row_version = row_version + 1 WHERE treaty_id = 'TR-0001'")
            .execute(&db.app)
            .await?;
    assert!(changed.rows_affected() > 0);
    db.drop_db().await
}

#[tokio::test]
async fn an_unbalanced_journal_posting_is_refused_at_commit() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let err = post_clearance(&db.app, "100.00", "99.99").await.err();
    assert_eq!(err.as_ref().and_then(sqlstate).as_deref(), Some("23514"), "{err:?}");
    let headers: i64 = sqlx::query_scalar("SELECT count(*) FROM clearances").fetch_one(&db.owner).await?;
    assert_eq!(headers, 0, "nothing of the unbalanced posting was kept");
    db.drop_db().await
}
