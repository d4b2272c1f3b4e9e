//! Period close (ADR 0015) through the router, against the real PostgreSQL
//! and DynamoDB (moto): who may close and reopen, what a closed period
//! refuses, and a close racing a clearance.

use std::time::Duration;

use clearance_core::write::WriteConfig;
use clearance_tests::write_api::{
    clear, job_when_done, search, send, send_with_roles, Apis, Reply, Row, Snapshot, Stack,
};
use http::Method;

const FILTER: &str = r#"{"treaty_ids": ["TR-0001"], "period_from": "2024-01", "period_to": "2024-06", "currency": "USD", "status": "open"}"#;

/// The snapshot's rows in `period` (`YYYY-MM`) with a positive amount.
async fn rows_in(stack: &Stack, snap: &Snapshot, period: &str) -> anyhow::Result<Vec<Row>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM transactions WHERE treaty_id = 'TR-0001' AND accounting_period = $1::date
           AND currency = 'USD' AND status = 'open' AND amount > 0",
    )
    .bind(format!("{period}-01"))
    .fetch_all(&stack.db.owner)
    .await?;
    Ok(snap.rows.iter().filter(|r| ids.contains(&r.id)).cloned().collect())
}

async fn clear_rows(apis: &Apis, snap: &Snapshot, rows: &[Row], key: &str) -> Reply {
    let picked: Vec<&Row> = rows.iter().collect();
    clear(apis, "op-a", snap, &picked, key).await
}

async fn post_reversal(apis: &Apis, path: &str, key: &str) -> Reply {
    send(&apis.write, Method::POST, path, br#"{"reason":"bounced"}"#, Some(("op-a", "*")), Some(key)).await
}

const CLOSE: &str = "/v1/treaties/TR-0001/periods/2024-03/close";
const REOPEN: &str = "/v1/treaties/TR-0001/periods/2024-03/reopen";
const CLOSER: (&str, &str, &str) = ("controller", "*", "closer");

#[tokio::test]
async fn a_closed_period_refuses_clearing_and_reversal_until_a_closer_reopens_it() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let snap = search(&apis, "op-a", FILTER).await?;
    let march = rows_in(&stack, &snap, "2024-03").await?;
    let april = rows_in(&stack, &snap, "2024-04").await?;
    assert!(march.len() >= 3 && !april.is_empty(), "rows in both periods");
    let first = clear_rows(&apis, &snap, &march[..2], "key-1").await;
    assert_eq!(first.status, 201, "{}", first.json);
    let reversal =
        format!("/v1/clearances/{}/reversal", first.json["clearance_id"].as_str().unwrap_or_default());

    // Only a closer entitled to the treaty closes; the body is optional.
    let plain = send_with_roles(&apis.write, CLOSE, b"", ("op-a", "*", ""), "close-0").await;
    assert_eq!((plain.status, plain.json["error"].as_str()), (403, Some("closer_role_required")));
    let foreign =
        send_with_roles(&apis.write, CLOSE, b"", ("controller", "TR-0002", "closer"), "close-0").await;
    assert_eq!((foreign.status, foreign.json["error"].as_str()), (403, Some("not_entitled")));
    assert_eq!(stack.count("SELECT count(*) FROM period_closes").await?, 0, "refusals write nothing");
    // The same operator and key then close (another body): the 403 kept
    // no idempotency record, or this would be 422.
    let closed =
        send_with_roles(&apis.write, CLOSE, br#"{"reason":"March reconciled"}"#, CLOSER, "close-1").await;
    assert_eq!(closed.status, 200, "{}", closed.json);
    assert_eq!(
        (closed.json["state"].as_str(), closed.json["period"].as_str(), closed.json["operator_id"].as_str()),
        (Some("closed"), Some("2024-03"), Some("controller"))
    );
    let replay =
        send_with_roles(&apis.write, CLOSE, br#"{"reason":"March reconciled"}"#, CLOSER, "close-1").await;
    assert_eq!((replay.status, replay.replayed, &replay.body), (200, true, &closed.body), "answered once");
    // A search now shows the period closed (the close moved the scope, so
    // this is a new snapshot, not the cached one).
    let shown =
        send(&apis.read, Method::POST, "/v1/searches", FILTER.as_bytes(), Some(("op-a", "*")), None).await;
    assert_eq!(
        (shown.json["cache"].as_str(), &shown.json["closed_periods"]),
        (Some("miss"), &serde_json::json!([{"treaty_id": "TR-0001", "period": "2024-03"}]))
    );
    let twice = send_with_roles(&apis.write, CLOSE, b"{}", CLOSER, "close-2").await;
    assert_eq!((twice.status, twice.json["error"].as_str()), (409, Some("period_already_closed")));

    // Clearing a row of March, or reversing a clearance of March: refused
    // with the period, nothing written; April still clears.
    let before = stack.ledger_counts().await?;
    let refused = clear_rows(&apis, &snap, &march[2..3], "key-2").await;
    assert_eq!(
        (refused.status, refused.json["error"].as_str()),
        (409, Some("period_closed")),
        "{}",
        refused.json
    );
    assert_eq!(refused.json["periods"], serde_json::json!(["2024-03"]));
    let mixed = clear_rows(&apis, &snap, &[march[2].clone(), april[0].clone()], "key-3").await;
    assert_eq!(
        mixed.json["error"].as_str(),
        Some("period_closed"),
        "one closed row refuses the whole selection"
    );
    let reverse = post_reversal(&apis, &reversal, "rev-1").await;
    assert_eq!(
        (reverse.status, reverse.json["error"].as_str()),
        (409, Some("period_closed")),
        "{}",
        reverse.json
    );
    assert_eq!(stack.ledger_counts().await?, before, "nothing of the refused postings was kept");
    let other = clear_rows(&apis, &snap, &april[..1], "key-4").await;
    assert_eq!(other.status, 201, "{}", other.json);

    // A reopen needs a reason; then March clears and reverses again.
    let bare = send_with_roles(&apis.write, REOPEN, b"{}", CLOSER, "reopen-1").await;
    assert_eq!((bare.status, bare.json["error"].as_str()), (400, Some("missing_field")));
    let reopened = send_with_roles(
        &apis.write,
        REOPEN,
        br#"{"reason":"late accrual from the cedent"}"#,
        CLOSER,
        "reopen-2",
    )
    .await;
    assert_eq!((reopened.status, reopened.json["state"].as_str()), (200, Some("open")), "{}", reopened.json);
    let again = send_with_roles(&apis.write, REOPEN, br#"{"reason":"again"}"#, CLOSER, "reopen-3").await;
    assert_eq!((again.status, again.json["error"].as_str()), (409, Some("period_not_closed")));
    let cleared = clear_rows(&apis, &snap, &march[2..3], "key-5").await;
    assert_eq!(cleared.status, 201, "{}", cleared.json);
    let shown =
        send(&apis.read, Method::POST, "/v1/searches", FILTER.as_bytes(), Some(("op-a", "*")), None).await;
    assert_eq!(shown.json["closed_periods"], serde_json::json!([]), "reopened: none closed");
    let reversed = post_reversal(&apis, &reversal, "rev-2").await;
    assert_eq!(reversed.status, 200, "{}", reversed.json);

    // The ledger keeps both entries, who and why.
    let entries: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT action, operator_id, reason FROM period_closes WHERE treaty_id = 'TR-0001' ORDER BY entry_id",
    )
    .fetch_all(&stack.db.owner)
    .await?;
    assert_eq!(
        entries,
        vec![
            ("close".into(), "controller".into(), "March reconciled".into()),
            ("reopen".into(), "controller".into(), "late accrual from the cedent".into()),
        ]
    );
    let appended = sqlx::query("UPDATE period_closes SET reason = 'x'").execute(&stack.db.owner).await;
    assert!(appended.is_err(), "the period ledger is append-only");
    stack.drop().await
}

#[tokio::test]
async fn a_clearance_waiting_on_a_close_in_flight_sees_it_and_is_refused() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let snap = search(&apis, "op-a", FILTER).await?;
    let march = rows_in(&stack, &snap, "2024-03").await?;
    anyhow::ensure!(!march.is_empty(), "rows in March");

    // A close in flight: its scope bump and entry written, not committed.
    let mut close = stack.db.owner.begin().await?;
    sqlx::query("UPDATE scope_versions SET version = version + 1 WHERE treaty_id = 'TR-0001'")
        .execute(&mut *close)
        .await?;
    sqlx::query(
        "INSERT INTO period_closes (treaty_id, accounting_period, action, operator_id, idempotency_key)
         VALUES ('TR-0001', '2024-03-01', 'close', 'controller', 'in-flight')",
    )
    .execute(&mut *close)
    .await?;

    let clearing = clear_rows(&apis, &snap, &march[..1], "key-race");
    // The close commits only once the clearance is seen waiting on a lock
    // (the scope row the close holds), so it reached its last write first.
    let owner = stack.db.owner.clone();
    let closing = async move {
        let mut waited = false;
        for _ in 0..400 {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&owner)
            .await?;
            if waiting > 0 {
                waited = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        close.commit().await?;
        anyhow::Ok(waited)
    };
    let (answer, waited) = tokio::join!(clearing, closing);
    assert!(waited?, "the clearance waited on the close's scope row");
    assert_eq!(
        (answer.status, answer.json["error"].as_str()),
        (409, Some("period_closed")),
        "{}",
        answer.json
    );
    let cleared = stack
        .count(&format!(
            "SELECT count(*) FROM transactions WHERE id = '{}' AND status <> 'open'",
            march[0].id
        ))
        .await?;
    assert_eq!(cleared, 0, "the row is still open");
    stack.drop().await
}

#[tokio::test]
async fn a_job_meeting_a_closed_period_fails_naming_it_and_releases_every_row() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig { sync_rows_max: 2, ..WriteConfig::default() }).await?;
    let snap = search(&apis, "op-a", FILTER).await?;
    let march = rows_in(&stack, &snap, "2024-03").await?;
    let april = rows_in(&stack, &snap, "2024-04").await?;
    anyhow::ensure!(march.len() >= 2 && april.len() >= 3, "rows in both periods");
    let closed = send_with_roles(&apis.write, CLOSE, b"{}", CLOSER, "close-job").await;
    assert_eq!(closed.status, 200, "{}", closed.json);

    // Five rows: over the sync limit, so a job; two of them in March.
    let rows: Vec<Row> = april[..3].iter().chain(&march[..2]).cloned().collect();
    let started = clear_rows(&apis, &snap, &rows, "key-job").await;
    assert_eq!(started.status, 202, "{}", started.json);
    let status = job_when_done(&apis, "op-a", started.json["job_id"].as_str().unwrap_or_default()).await;
    assert_eq!(
        (status["state"].as_str(), status["error"]["code"].as_str()),
        (Some("failed"), Some("period_closed"))
    );
    assert!(status["error"]["message"].as_str().is_some_and(|m| m.contains("2024-03")), "{status}");
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let held = stack
        .count(&format!(
            "SELECT count(*) FROM transactions WHERE status <> 'open' AND id IN ('{}')",
            ids.join("','")
        ))
        .await?;
    assert_eq!(held, 0, "every row of the job is open again");
    assert_eq!(stack.count("SELECT count(*) FROM clearances").await?, 0, "nothing posted");
    stack.drop().await
}
