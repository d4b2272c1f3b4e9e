//! The clearance ledger is append-only for the application role, every
//! journal posting balances, the reader role reads only, and the audit
//! queries (`clearance_pg::audit`) find each kind of broken ledger.

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
    let tables = [
        "clearances",
        "clearance_lines",
        "clearance_reversals",
        "journal_entries",
        "clearance_jobs",
        "event_outbox",
    ];
    for table in tables {
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
async fn the_reader_role_searches_and_cannot_write_anything() -> anyhow::Result<()> {
    use clearance_core::ports::LedgerReader;
    use futures_util::TryStreamExt;

    const READ_ONLY_TRANSACTION: &str = "25006";
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut clearance_loader::generate::Generator::new(1).with_rows(10))
        .await?;

    // What the read path does works as the reader: versions and a search.
    let ledger = clearance_pg::read::PgLedgerReader::new(db.reader.clone());
    let filter = clearance_core::snapshot::SearchFilter::parse(&clearance_core::snapshot::FilterInput {
        treaty_ids: vec!["TR-0001".into()],
        period_from: "2020-01".into(),
        period_to: "2030-12".into(),
        ..Default::default()
    })?;
    ledger.version_token(&filter).await?;
    let (_, rows) = ledger.read_snapshot(&filter).await?;
    let streamed: Vec<_> = rows.try_collect().await?;
    let expected: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions WHERE treaty_id = 'TR-0001'")
        .fetch_one(&db.owner)
        .await?;
    assert_eq!(streamed.len() as i64, expected);

    let writes = [
        "UPDATE transactions SET status = 'cleared'",
        "UPDATE transactions SET row_version = row_version + 1",
        "UPDATE scope_versions SET version = version + 1",
        "INSERT INTO scope_versions (treaty_id, version) VALUES ('TR-9999', 1)",
        "INSERT INTO clearances (clearance_id) VALUES (gen_random_uuid())",
        "INSERT INTO journal_entries (clearance_id) VALUES (gen_random_uuid())",
        "SELECT count(*) FROM clearances",
        "SELECT ensure_period_partitions(2040, 2040)",
    ];
    for sql in writes {
        // Its sessions are read-only: a write fails before the grants are asked...
        let err = sqlx::query(sql).execute(&db.reader).await.err();
        let state = err.as_ref().and_then(sqlstate);
        let expected = if sql.starts_with("SELECT") { PERMISSION_DENIED } else { READ_ONLY_TRANSACTION };
        assert_eq!(state.as_deref(), Some(expected), "{sql}: {err:?}");
        // ...and a session that turns read-write still has no grant.
        let mut tx = db.reader.begin().await?;
        sqlx::query("SET TRANSACTION READ WRITE").execute(&mut *tx).await?;
        let err = sqlx::query(sql).execute(&mut *tx).await.err();
        assert_eq!(err.as_ref().and_then(sqlstate).as_deref(), Some(PERMISSION_DENIED), "{sql}: {err:?}");
        tx.rollback().await?;
    }
    let cleared: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions WHERE status <> 'open'")
        .fetch_one(&db.owner)
        .await?;
    assert_eq!(cleared, 0, "nothing changed");
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

#[tokio::test]
async fn the_audit_finds_each_kind_of_broken_ledger_and_passes_a_sound_one() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut clearance_loader::generate::Generator::new(1).with_rows(50))
        .await?;
    let broken = |counts: Vec<(&'static str, i64)>| -> Vec<&'static str> {
        counts.into_iter().filter(|(_, n)| *n != 0).map(|(name, _)| name).collect()
    };
    assert_eq!(broken(clearance_pg::audit::violations(&db.owner).await?), Vec::<&str>::new());

    // A sound clearance of one row: the audit still passes.
    let (id, treaty, period, amount): (Uuid, String, chrono::NaiveDate, rust_decimal::Decimal) = sqlx::query_as(
        "SELECT id, treaty_id, accounting_period, amount FROM transactions WHERE amount > 0 ORDER BY id LIMIT 1",
    )
    .fetch_one(&db.owner)
    .await?;
    let post = |clearance: Uuid, rows: i32| {
        let (db, treaty) = (&db, treaty.clone());
        async move {
            let mut tx = db.owner.begin().await?;
            sqlx::query(
                "INSERT INTO clearances (clearance_id, treaty_id, check_number, check_amount, currency, received_on,
                    cleared_total, difference, row_count, operator_id, snapshot_id, snapshot_filter, version_token, idempotency_key)
                 VALUES ($1, $2, 'CHK', $3, 'USD', '2024-05-31', $3, 0, $4, 'op', 's', '{}', 't', $1::text)",
            )
            .bind(clearance)
            .bind(&treaty)
            .bind(amount)
            .bind(rows)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO clearance_lines (clearance_id, transaction_id, treaty_id, accounting_period, amount, row_version)
                 VALUES ($1, $2, $3, $4, $5, 1)",
            )
            .bind(clearance)
            .bind(id)
            .bind(&treaty)
            .bind(period)
            .bind(amount)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO journal_entries (clearance_id, account, debit, credit, currency)
                 VALUES ($1, 'cash', $2, 0, 'USD'), ($1, 'receivable', 0, $2, 'USD')",
            )
            .bind(clearance)
            .bind(amount)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            anyhow::Ok(())
        }
    };
    let first = Uuid::new_v4();
    post(first, 1).await?;
    sqlx::query("UPDATE transactions SET status = 'cleared', clearance_id = $1 WHERE id = $2")
        .bind(first)
        .bind(id)
        .execute(&db.owner)
        .await?;
    assert_eq!(broken(clearance_pg::audit::violations(&db.owner).await?), Vec::<&str>::new());

    // The same row in a second live clearance whose header claims two rows.
    post(Uuid::new_v4(), 2).await?;
    // A row cleared with no clearance, another left pending.
    sqlx::query(
        "UPDATE transactions SET status = 'cleared', clearance_id = gen_random_uuid()
         WHERE id = (SELECT id FROM transactions WHERE status = 'open' ORDER BY id LIMIT 1)",
    )
    .execute(&db.owner)
    .await?;
    sqlx::query(
        "UPDATE transactions SET status = 'pending'
         WHERE id = (SELECT id FROM transactions WHERE status = 'open' ORDER BY id LIMIT 1)",
    )
    .execute(&db.owner)
    .await?;
    // A line naming no header: refused by its statement's check, even to
    // the owner; written only with triggers off (a superuser's replica
    // session), and then found by the audit.
    let orphan = Uuid::new_v4();
    let line = "INSERT INTO clearance_lines (clearance_id, transaction_id, treaty_id, accounting_period, amount, row_version)
                VALUES ($1, $2, $3, $4, 1, 1)";
    let refused = sqlx::query(line).bind(orphan).bind(id).bind(&treaty).bind(period).execute(&db.owner).await;
    assert_eq!(
        refused.err().as_ref().and_then(sqlstate).as_deref(),
        Some("23503"),
        "a line without its header"
    );
    // Nor can a session's temporary `clearances` stand in for the ledger's.
    let mut shadowed = db.app.begin().await?;
    sqlx::query("CREATE TEMP TABLE clearances (clearance_id uuid) ON COMMIT DROP")
        .execute(&mut *shadowed)
        .await?;
    sqlx::query("INSERT INTO clearances VALUES ($1)").bind(orphan).execute(&mut *shadowed).await?;
    let refused =
        sqlx::query(line).bind(orphan).bind(id).bind(&treaty).bind(period).execute(&mut *shadowed).await;
    assert_eq!(refused.err().as_ref().and_then(sqlstate).as_deref(), Some("23503"), "a temporary header");
    shadowed.rollback().await?;
    let mut replica = db.owner.begin().await?;
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *replica).await?;
    sqlx::query(line).bind(orphan).bind(id).bind(&treaty).bind(period).execute(&mut *replica).await?;
    replica.commit().await?;

    let found = broken(clearance_pg::audit::violations(&db.owner).await?);
    let names: Vec<&str> = clearance_pg::audit::INVARIANTS.iter().map(|i| i.name).collect();
    assert_eq!(
        found,
        vec![names[0], names[1], names[2], names[3], names[6], names[7]],
        "twice (three lines now), partial (the second clearance's line), orphan cleared row, header, pending, \
         line without header"
    );
    db.drop_db().await
}
