//! The write path end to end through the router, against the real
//! PostgreSQL and DynamoDB (moto): clearing a selection of a snapshot,
//! reading and reversing it, idempotency, concurrent operators and bad input.

use std::sync::Arc;

use clearance_core::idempotency::{IdempotencyKey, IdempotencyStore};
use clearance_core::snapshot::OperatorId;
use clearance_core::write::WriteConfig;
use clearance_tests::read_api::now;
use clearance_tests::write_api::{
    check_for, clear, clearance_body, item_count, search, send, with_member, Reply, Row, Stack,
};
use http::Method;
use rust_decimal::Decimal;

const FILTER: &str = r#"{"treaty_ids": ["TR-0001"], "period_from": "2024-01", "period_to": "2024-06", "currency": "USD", "status": "open"}"#;

#[tokio::test]
async fn a_selection_clears_reads_back_reverses_once_and_stale_snapshots_are_refused() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let snap = search(&apis, "op-a", FILTER).await?;
    assert!(snap.rows.len() > 50, "the filter finds rows: {}", snap.rows.len());
    let picked: Vec<&Row> = snap.rows.iter().filter(|r| r.amount > Decimal::ZERO).take(5).collect();
    let total: Decimal = picked.iter().map(|r| r.amount).sum();

    let posted = clear(&apis, "op-a", &snap, &picked, "key-1").await;
    assert_eq!(posted.status, 201, "{}", posted.json);
    let c = &posted.json;
    assert_eq!((c["state"].as_str(), c["row_count"].as_u64()), (Some("posted"), Some(5)));
    assert_eq!(c["cleared_total"].as_str().map(str::parse::<Decimal>).transpose()?, Some(total));
    assert_eq!(c["difference"], "0.00");
    assert_eq!(c["snapshot_id"].as_str(), Some(snap.id.as_str()));
    assert_eq!(c["snapshot_filter"]["treaty_ids"][0], "TR-0001", "the filter is recorded for audit");
    let journal = c["journal"].as_array().cloned().unwrap_or_default();
    let sum = |side: &str| -> Decimal {
        journal.iter().filter_map(|l| l[side].as_str()?.parse::<Decimal>().ok()).sum()
    };
    assert_eq!(sum("debit"), sum("credit"), "the journal balances: {journal:?}");
    assert_eq!(sum("debit"), total);
    let id = c["clearance_id"].as_str().unwrap_or_default().to_owned();
    let cleared = stack
        .count(&format!(
            "SELECT count(*) FROM transactions WHERE status = 'cleared' AND clearance_id = '{id}' AND row_version = 2"
        ))
        .await?;
    assert_eq!(cleared, 5);

    let read =
        send(&apis.write, Method::GET, &format!("/v1/clearances/{id}"), b"", Some(("op-z", "*")), None).await;
    assert_eq!((read.status, &read.json), (200, &posted.json), "any entitled operator reads it");
    let foreign =
        send(&apis.write, Method::GET, &format!("/v1/clearances/{id}"), b"", Some(("op-z", "TR-0002")), None)
            .await;
    assert_eq!((foreign.status, foreign.json["error"].as_str()), (404, Some("clearance_not_found")));

    // The snapshot's pages now say stale.
    let page = send(
        &apis.read,
        Method::GET,
        &format!("/v1/searches/{}/pages/0", snap.id),
        b"",
        Some(("op-a", "*")),
        None,
    )
    .await;
    assert_eq!(page.json["stale"], true);

    // The same rows from the same (now stale) snapshot: refused with exactly them.
    let again = clear(&apis, "op-a", &snap, &picked[3..], "key-2").await;
    assert_eq!((again.status, again.json["error"].as_str()), (409, Some("stale_snapshot")), "{}", again.json);
    let mut expected: Vec<&str> = picked[3..].iter().map(|r| r.id.as_str()).collect();
    expected.sort_unstable();
    let moved: Vec<&str> =
        again.json["moved_ids"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
    assert_eq!(moved, expected);

    // Reversal: a reason is mandatory; then the rows open with new versions.
    let reversal = format!("/v1/clearances/{id}/reversal");
    let no_reason =
        send(&apis.write, Method::POST, &reversal, br#"{"reason": "  "}"#, Some(("op-b", "*")), Some("r-1"))
            .await;
    assert_eq!((no_reason.status, no_reason.json["field"].as_str()), (400, Some("/reason")));
    let body = br#"{"reason": "check CHK-1001 bounced"}"#;
    let reversed = send(&apis.write, Method::POST, &reversal, body, Some(("op-b", "*")), Some("r-1")).await;
    assert_eq!(
        (reversed.status, reversed.json["state"].as_str()),
        (200, Some("reversed")),
        "{}",
        reversed.json
    );
    assert_eq!(reversed.json["reversal"]["reason"], "check CHK-1001 bounced");
    assert_eq!(reversed.json["reversal"]["operator_id"], "op-b");
    let reopened = stack
        .count(&format!(
            "SELECT count(*) FROM transactions WHERE status = 'open' AND clearance_id IS NULL AND row_version = 3
             AND id IN ({})",
            picked.iter().map(|r| format!("'{}'", r.id)).collect::<Vec<_>>().join(",")
        ))
        .await?;
    assert_eq!(reopened, 5, "the rows are open again, with new versions");
    let balanced = stack
        .count(&format!(
            "SELECT count(*) FROM (SELECT reversal_id FROM journal_entries WHERE clearance_id = '{id}'
             GROUP BY reversal_id HAVING sum(debit) = sum(credit)) x"
        ))
        .await?;
    assert_eq!(balanced, 2, "the clearance and its reversal each balance");
    let twice = send(&apis.write, Method::POST, &reversal, body, Some(("op-b", "*")), Some("r-2")).await;
    assert_eq!((twice.status, twice.json["error"].as_str()), (409, Some("already_reversed")));
    let replay = send(&apis.write, Method::POST, &reversal, body, Some(("op-b", "*")), Some("r-1")).await;
    assert_eq!((replay.status, replay.replayed, &replay.body), (200, true, &reversed.body));

    // Reopened rows are stale for the old snapshot (their versions moved),
    // and clear again from a fresh search.
    let stale = clear(&apis, "op-a", &snap, &picked[..1], "key-3").await;
    assert_eq!((stale.status, stale.json["error"].as_str()), (409, Some("stale_snapshot")));
    let fresh = search(&apis, "op-a", FILTER).await?;
    let same: Vec<&Row> = fresh.rows.iter().filter(|r| picked.iter().any(|p| p.id == r.id)).collect();
    assert_eq!(same.len(), 5);
    let recleared = clear(&apis, "op-a", &fresh, &same, "key-4").await;
    assert_eq!(recleared.status, 201, "{}", recleared.json);
    stack.drop().await
}

#[tokio::test]
async fn replays_are_answered_once_byte_for_byte_and_the_ledger_holds_the_key_too() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis = Arc::new(stack.apis(WriteConfig::default()).await?);
    let snap = search(&apis, "op-a", FILTER).await?;
    let rows: Vec<&Row> = snap.rows.iter().filter(|r| r.amount > Decimal::ZERO).collect();
    let picked = &rows[0..4];
    let (check, allow) = check_for(picked);
    let body = clearance_body(&snap, picked, check, allow);
    let who = Some(("op-a", "*"));

    let missing = send(&apis.write, Method::POST, "/v1/clearances", &body, who, None).await;
    assert_eq!((missing.status, missing.json["error"].as_str()), (400, Some("missing_idempotency_key")));

    let first = send(&apis.write, Method::POST, "/v1/clearances", &body, who, Some("idem-1")).await;
    assert_eq!((first.status, first.replayed), (201, false), "{}", first.json);
    let counts = stack.ledger_counts().await?;
    let replay = send(&apis.write, Method::POST, "/v1/clearances", &body, who, Some("idem-1")).await;
    assert_eq!((replay.status, replay.replayed), (201, true));
    assert_eq!(replay.body, first.body, "the stored response, byte for byte");
    assert_eq!(stack.ledger_counts().await?, counts, "nothing executed again");

    let mutated = clearance_body(&snap, picked, check, !allow);
    let reused = send(&apis.write, Method::POST, "/v1/clearances", &mutated, who, Some("idem-1")).await;
    assert_eq!((reused.status, reused.json["error"].as_str()), (422, Some("idempotency_key_reused")));
    // Another operator's key of the same spelling is their own.
    let other =
        send(&apis.write, Method::POST, "/v1/clearances", &body, Some(("op-b", "*")), Some("idem-1")).await;
    assert_eq!(other.json["error"], "snapshot_not_found", "op-b cannot use op-a's snapshot");

    // The DynamoDB record lost (a crash after the commit, before the record
    // was completed): the retry is answered from the ledger's key binding.
    stack
        .table
        .client
        .delete_item()
        .table_name(&stack.table.name)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("idem#idem-1#op-a".into()))
        .send()
        .await?;
    let after_crash = send(&apis.write, Method::POST, "/v1/clearances", &body, who, Some("idem-1")).await;
    assert_eq!(after_crash.status, 201, "{}", after_crash.json);
    assert_eq!(after_crash.json["clearance_id"], first.json["clearance_id"]);
    assert_eq!(stack.ledger_counts().await?, counts, "posted once");

    // A record left in flight by a crashed request: 409 while its lease
    // runs, taken over once it lapsed.
    let store =
        clearance_dynamo::DynamoIdempotencyStore::new(stack.table.client.clone(), stack.table.name.clone());
    let op = OperatorId::parse("op-a")?;
    let key = IdempotencyKey::parse(Some("idem-2"))?;
    let picked2 = &rows[4..6];
    let (check2, allow2) = check_for(picked2);
    let body2 = clearance_body(&snap, picked2, check2, allow2);
    let hash = clearance_core::idempotency::request_hash("POST", "/v1/clearances", &body2);
    store.claim(&op, &key, &hash, now(), now() + 60, now() + 86_400).await?;
    let busy = send(&apis.write, Method::POST, "/v1/clearances", &body2, who, Some("idem-2")).await;
    assert_eq!((busy.status, busy.json["error"].as_str()), (409, Some("request_in_flight")));
    let key3 = IdempotencyKey::parse(Some("idem-3"))?;
    let hash3 = clearance_core::idempotency::request_hash("POST", "/v1/clearances", &body2);
    store.claim(&op, &key3, &hash3, now(), now() - 1, now() + 86_400).await?;
    let taken = send(&apis.write, Method::POST, "/v1/clearances", &body2, who, Some("idem-3")).await;
    assert_eq!(taken.status, 201, "a lapsed lease is taken over: {}", taken.json);

    // 16 simultaneous identical requests: exactly one execution.
    let picked3 = &rows[10..14];
    let (check3, allow3) = check_for(picked3);
    let body3 = Arc::new(clearance_body(&snap, picked3, check3, allow3));
    let before = stack.count("SELECT count(*) FROM clearances").await?;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (apis, body3) = (Arc::clone(&apis), Arc::clone(&body3));
        tasks.push(tokio::spawn(async move {
            send(&apis.write, Method::POST, "/v1/clearances", &body3, Some(("op-a", "*")), Some("idem-16"))
                .await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await?);
    }
    let executed: Vec<&Reply> = replies.iter().filter(|r| r.status == 201 && !r.replayed).collect();
    assert_eq!(executed.len(), 1, "{:?}", replies.iter().map(|r| (r.status, r.replayed)).collect::<Vec<_>>());
    for reply in &replies {
        match (reply.status, reply.replayed) {
            (201, _) => assert_eq!(reply.body, executed[0].body),
            (409, false) => assert_eq!(reply.json["error"], "request_in_flight"),
            other => panic!("unexpected answer {other:?}: {}", reply.json),
        }
    }
    assert_eq!(stack.count("SELECT count(*) FROM clearances").await?, before + 1);
    drop(apis);
    stack.drop().await
}

#[tokio::test]
async fn sixteen_operators_on_one_treaty_never_clear_a_row_twice() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis = Arc::new(stack.apis(WriteConfig::default()).await?);

    // Disjoint selections by two operators: both succeed.
    let a = search(&apis, "op-a", FILTER).await?;
    let b = search(&apis, "op-b", FILTER).await?;
    assert_ne!(a.id, b.id, "each operator has their own snapshot");
    let (left, right): (Vec<&Row>, Vec<&Row>) =
        (a.rows[0..6].iter().collect(), b.rows[6..12].iter().collect());
    let (ra, rb) =
        tokio::join!(clear(&apis, "op-a", &a, &left, "d-a"), clear(&apis, "op-b", &b, &right, "d-b"));
    assert_eq!((ra.status, rb.status), (201, 201), "{} {}", ra.json, rb.json);

    let mut tasks = Vec::new();
    for op in 0..16_u64 {
        let apis = Arc::clone(&apis);
        tasks.push(tokio::spawn(async move {
            let operator = format!("op-{op}");
            let snap = search(&apis, &operator, FILTER).await?;
            let pool_size = snap.rows.len().min(240);
            let mut state = (op + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut outcomes = [0_u32; 3];
            for attempt in 0..50 {
                let mut pick: Vec<&Row> = Vec::new();
                for _ in 0..6 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let row = &snap.rows[(state % pool_size as u64) as usize];
                    if !pick.iter().any(|r| r.id == row.id) {
                        pick.push(row);
                    }
                }
                let reply = clear(&apis, &operator, &snap, &pick, &format!("k-{attempt}")).await;
                match reply.status {
                    201 => {
                        anyhow::ensure!(reply.json["row_count"].as_u64() == Some(pick.len() as u64));
                        outcomes[0] += 1;
                    }
                    409 => {
                        anyhow::ensure!(reply.json["error"] == "stale_snapshot", "{}", reply.json);
                        outcomes[1] += 1;
                    }
                    422 => outcomes[2] += 1,
                    other => anyhow::bail!("{operator} got {other}: {}", reply.json),
                }
            }
            anyhow::Ok(outcomes)
        }));
    }
    let mut totals = [0_u32; 3];
    for task in tasks {
        let outcome = task.await??;
        for (t, o) in totals.iter_mut().zip(outcome) {
            *t += o;
        }
    }
    assert_eq!(totals.iter().sum::<u32>(), 16 * 50, "every request ended as one of 201 / 409 / 422");
    assert!(totals[0] > 0 && totals[1] > 0, "the selections really overlapped: {totals:?}");

    // No row cleared twice, each clearance all-or-nothing, headers add up
    // (check = cleared total + booked difference), journals balance.
    for (invariant, broken) in clearance_pg::audit::violations(&stack.db.owner).await? {
        assert_eq!(broken, 0, "{invariant}");
    }
    let posted = stack.count("SELECT count(*) FROM clearances").await?;
    assert_eq!(posted, i64::from(totals[0]) + 2, "one clearance per 201");
    drop(apis);
    stack.drop().await
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_code_and_field_and_writes_nothing() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis =
        stack.apis(WriteConfig { sync_rows_max: 20, batch_rows_max: 20, ..WriteConfig::default() }).await?;
    let snap = search(&apis, "op-a", FILTER).await?;
    let one = snap.rows[0].id.clone();
    let base = serde_json::json!({
        "snapshot_id": snap.id,
        "version_token": snap.token,
        "selection": { "ids": [one] },
        "check": { "number": "CHK-1", "amount": snap.rows[0].amount.to_string(), "currency": "USD", "received_on": "2024-07-01" },
    });
    let with = |pointer: &str, value: serde_json::Value| with_member(&base, pointer, value);
    let many: Vec<String> = snap.rows.iter().take(21).map(|r| r.id.clone()).collect();
    let huge = vec![b' '; clearance_http::CLEARANCE_BODY_BYTES_MAX + 1];
    type Case = (&'static str, Vec<u8>, Option<&'static str>, u16, &'static str, Option<&'static str>);
    let cases: Vec<Case> = vec![
        (
            "mass assignment: status",
            with("/status", "cleared".into()),
            Some("k"),
            400,
            "read_only_field",
            Some("/status"),
        ),
        (
            "mass assignment: row_version",
            with("/row_version", 9.into()),
            Some("k"),
            400,
            "read_only_field",
            Some("/row_version"),
        ),
        (
            "mass assignment: clearance_id",
            with("/clearance_id", "x".into()),
            Some("k"),
            400,
            "read_only_field",
            Some("/clearance_id"),
        ),
        (
            "unknown field",
            with("/check/memo", "x".into()),
            Some("k"),
            400,
            "unknown_field",
            Some("/check/memo"),
        ),
        (
            "negative amount",
            with("/check/amount", "-5.00".into()),
            Some("k"),
            400,
            "invalid_amount",
            Some("/check/amount"),
        ),
        (
            "over-precise amount",
            with("/check/amount", "5.001".into()),
            Some("k"),
            400,
            "invalid_amount",
            Some("/check/amount"),
        ),
        (
            "amount as a float",
            with("/check/amount", 5.5.into()),
            Some("k"),
            400,
            "invalid_type",
            Some("/check/amount"),
        ),
        (
            "unknown currency",
            with("/check/currency", "XYZ".into()),
            Some("k"),
            400,
            "invalid_currency",
            Some("/check/currency"),
        ),
        (
            "duplicate ids",
            with("/selection/ids", serde_json::json!([one, one])),
            Some("k"),
            400,
            "duplicate_id",
            Some("/selection/ids/1"),
        ),
        (
            "empty selection",
            with("/selection/ids", serde_json::json!([])),
            Some("k"),
            400,
            "empty_selection",
            Some("/selection/ids"),
        ),
        (
            "bad id",
            with("/selection/ids", serde_json::json!(["nope"])),
            Some("k"),
            400,
            "invalid_id",
            Some("/selection/ids/0"),
        ),
        (
            "bad date",
            with("/check/received_on", "2024-13-01".into()),
            Some("k"),
            400,
            "invalid_date",
            Some("/check/received_on"),
        ),
        (
            "bad token",
            with("/version_token", "v9".into()),
            Some("k"),
            400,
            "invalid_version_token",
            Some("/version_token"),
        ),
        ("malformed json", b"{\"snapshot_id\":".to_vec(), Some("k"), 400, "malformed_json", None),
        ("oversized body", huge, Some("k"), 413, "body_too_large", None),
        (
            "missing key",
            base.to_string().into_bytes(),
            None,
            400,
            "missing_idempotency_key",
            Some("Idempotency-Key"),
        ),
        (
            "bad key",
            base.to_string().into_bytes(),
            Some("a b"),
            400,
            "invalid_idempotency_key",
            Some("Idempotency-Key"),
        ),
        (
            "selection object",
            with("/selection", serde_json::json!({"all": false})),
            Some("k"),
            400,
            "invalid_selection",
            Some("/selection"),
        ),
        (
            "over the sync limit",
            with("/selection/ids", serde_json::json!(many)),
            Some("k-big"),
            413,
            "selection_too_large",
            Some("/selection"),
        ),
    ];
    let counts = stack.ledger_counts().await?;
    let items = item_count(&stack.table.client, &stack.table.name).await?;
    for (name, body, key, status, code, field) in &cases {
        let reply = send(&apis.write, Method::POST, "/v1/clearances", body, Some(("op-a", "*")), *key).await;
        assert_eq!(
            (reply.status, reply.json["error"].as_str(), reply.json["field"].as_str()),
            (*status, Some(*code), *field),
            "{name}: {}",
            reply.json
        );
    }
    // Mistakes found against the snapshot or the ledger: 4xx, ledger untouched.
    let business: Vec<Case> = vec![
        (
            "unknown snapshot",
            with("/snapshot_id", "0".repeat(64).into()),
            Some("b1"),
            404,
            "snapshot_not_found",
            Some("/snapshot_id"),
        ),
        (
            "token of another scope",
            with("/version_token", "v1.".into()),
            Some("b2"),
            409,
            "version_token_mismatch",
            Some("/version_token"),
        ),
        (
            "id not in the snapshot",
            with("/selection/ids", serde_json::json!([uuid::Uuid::nil()])),
            Some("b3"),
            422,
            "unknown_ids",
            Some("/selection/ids"),
        ),
        (
            "amount mismatch",
            with("/check/amount", "0.01".into()),
            Some("b4"),
            422,
            "amount_mismatch",
            Some("/check/amount"),
        ),
        (
            "currency mismatch",
            with("/check/currency", "EUR".into()),
            Some("b5"),
            422,
            "currency_mismatch",
            Some("/check/currency"),
        ),
    ];
    for (name, body, key, status, code, field) in &business {
        let reply = send(&apis.write, Method::POST, "/v1/clearances", body, Some(("op-a", "*")), *key).await;
        assert_eq!(
            (reply.status, reply.json["error"].as_str(), reply.json["field"].as_str()),
            (*status, Some(*code), *field),
            "{name}: {}",
            reply.json
        );
    }
    let unauthenticated =
        send(&apis.write, Method::POST, "/v1/clearances", &with("/x", 1.into()), None, Some("k")).await;
    assert_eq!(
        (unauthenticated.status, unauthenticated.json["error"].as_str()),
        (401, Some("unauthenticated"))
    );
    let not_entitled = send(
        &apis.write,
        Method::POST,
        "/v1/clearances",
        &base.to_string().into_bytes(),
        Some(("op-a", "TR-0002")),
        Some("k-ent"),
    )
    .await;
    assert_eq!((not_entitled.status, not_entitled.json["error"].as_str()), (403, Some("not_entitled")));
    let get_bad = send(&apis.write, Method::GET, "/v1/clearances/nope", b"", Some(("op-a", "*")), None).await;
    assert_eq!((get_bad.status, get_bad.json["field"].as_str()), (400, Some("id")));
    let reversal = format!("/v1/clearances/{}/reversal", uuid::Uuid::nil());
    let rev_unknown = send(
        &apis.write,
        Method::POST,
        &reversal,
        br#"{"reason":"x","status":"open"}"#,
        Some(("op-a", "*")),
        Some("r"),
    )
    .await;
    assert_eq!((rev_unknown.status, rev_unknown.json["error"].as_str()), (400, Some("read_only_field")));
    let rev_missing =
        send(&apis.write, Method::POST, &reversal, br#"{"reason":"x"}"#, Some(("op-a", "*")), Some("r"))
            .await;
    assert_eq!((rev_missing.status, rev_missing.json["error"].as_str()), (404, Some("clearance_not_found")));
    let wrong_method =
        send(&apis.write, Method::DELETE, "/v1/clearances", b"", Some(("op-a", "*")), Some("k")).await;
    assert_eq!(wrong_method.status, 405);

    assert_eq!(stack.ledger_counts().await?, counts, "nothing written to the ledger");
    let business_records = business.len() as i64 + 2; // + the 403 and the 404 reversal, kept for replay
    assert_eq!(
        item_count(&stack.table.client, &stack.table.name).await?,
        items + business_records,
        "input refused before IO leaves no DynamoDB item; answers after IO are kept for replay"
    );
    stack.drop().await
}

#[tokio::test]
async fn a_request_whose_lease_was_taken_over_cannot_free_its_successors_claim() -> anyhow::Result<()> {
    let table = clearance_tests::dynamo::TestTable::new().await?;
    let store = clearance_dynamo::DynamoIdempotencyStore::new(table.client.clone(), table.name.clone());
    let config = clearance_core::idempotency::IdempotencyConfig { ttl_secs: 86_400, lease_secs: 60 };
    let (op, key, hash) = (OperatorId::parse("op-a")?, IdempotencyKey::parse(Some("lease-1"))?, "h1");
    let begin = |now: i64| clearance_core::idempotency::begin(&store, config, &op, &key, hash, now);
    use clearance_core::idempotency::Decision;
    // The first request claims at t, and is still running when its lease
    // lapses; a retry at t + 61 takes the key over.
    let t = now();
    let Decision::Execute { lease_until_secs: first } = begin(t).await? else { panic!("not claimed") };
    let Decision::Execute { lease_until_secs: second } = begin(t + 61).await? else {
        panic!("not taken over")
    };
    assert_ne!(first, second);
    // The first one fails and releases with its own lease: the successor's
    // claim stays, so a third request is still told to wait.
    store.release(&op, &key, hash, first).await?;
    assert!(matches!(begin(t + 62).await, Err(clearance_core::idempotency::IdempotencyError::InFlight)));
    // The successor's own release frees the key.
    store.release(&op, &key, hash, second).await?;
    assert!(matches!(begin(t + 63).await?, Decision::Execute { .. }));
    table.delete().await
}

#[tokio::test]
async fn a_difference_is_booked_only_within_the_tolerance_or_as_an_explicit_overpayment() -> anyhow::Result<()>
{
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let snap = search(&apis, "op-a", FILTER).await?;
    let rows: Vec<&Row> = snap.rows.iter().filter(|r| r.amount > Decimal::from(2_000)).take(4).collect();
    anyhow::ensure!(rows.len() == 4, "four open rows over 2,000.00");
    let body = |row: &Row, check: Decimal, allow: bool, over: bool| {
        serde_json::json!({
            "snapshot_id": snap.id, "version_token": snap.token,
            "selection": { "ids": [row.id] },
            "check": { "number": "CHK-T", "amount": check.to_string(), "currency": "USD", "received_on": "2024-07-01" },
            "allow_difference": allow, "overpayment_to_unapplied": over,
        })
        .to_string()
        .into_bytes()
    };
    let post = |b: Vec<u8>, key: &'static str| {
        let apis = &apis;
        async move { send(&apis.write, Method::POST, "/v1/clearances", &b, Some(("op-a", "*")), Some(key)).await }
    };
    let before = stack.ledger_counts().await?;
    // Short by 5.00 on a check over 2,000: beyond the 1.00 cap, refused
    // even with both flags, with the bound; nothing written.
    let short = post(body(rows[0], rows[0].amount - Decimal::from(5), true, true), "t-short").await;
    assert_eq!(
        (short.status, short.json["error"].as_str()),
        (422, Some("difference_out_of_tolerance")),
        "{}",
        short.json
    );
    assert_eq!(short.json["allowed_difference"], "1.00");
    assert_eq!(short.json["difference"], "-5.00");
    // Over by 50.00 with only allow_difference: refused.
    let over = post(body(rows[1], rows[1].amount + Decimal::from(50), true, false), "t-over").await;
    assert_eq!((over.status, over.json["error"].as_str()), (422, Some("difference_out_of_tolerance")));
    // Without any flag, any difference is a mismatch, as before.
    let plain = post(body(rows[1], rows[1].amount + Decimal::new(1, 2), false, false), "t-plain").await;
    assert_eq!((plain.status, plain.json["error"].as_str()), (422, Some("amount_mismatch")));
    assert_eq!(stack.ledger_counts().await?, before, "nothing written");
    // Within the tolerance with allow_difference: booked to unapplied cash.
    let within = post(body(rows[2], rows[2].amount + Decimal::new(75, 2), true, false), "t-within").await;
    assert_eq!(within.status, 201, "{}", within.json);
    assert_eq!(within.json["difference"], "0.75");
    // An overpayment beyond it, sent to unapplied cash explicitly: booked.
    let explicit = post(body(rows[3], rows[3].amount + Decimal::from(50), false, true), "t-explicit").await;
    assert_eq!(explicit.status, 201, "{}", explicit.json);
    assert_eq!(explicit.json["difference"], "50.00");
    let unapplied = explicit.json["journal"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["account"] == "unapplied_cash")
        .cloned()
        .unwrap_or_default();
    assert_eq!(unapplied["credit"], "50.00");
    stack.drop().await
}

#[tokio::test]
async fn a_broken_ledger_invariant_is_a_500_not_an_outage_and_writes_nothing() -> anyhow::Result<()> {
    let stack = Stack::new(5_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let snap = search(&apis, "op-a", FILTER).await?;
    let row = snap.rows.iter().find(|r| r.amount > Decimal::ONE).ok_or_else(|| anyhow::anyhow!("no row"))?;
    // Behind the application's back (the owner role can, the application's
    // cannot): the row's amount changes without a new row version, so the
    // guard passes and the locked total no longer is the planned one.
    sqlx::query("UPDATE transactions SET amount = amount + 1 WHERE id = $1::uuid")
        .bind(&row.id)
        .execute(&stack.db.owner)
        .await?;
    let before = stack.ledger_counts().await?;
    let answer = clear(&apis, "op-a", &snap, &[row], "invariant-1").await;
    assert_eq!(
        (answer.status, answer.json["error"].as_str()),
        (500, Some("internal_invariant")),
        "{}",
        answer.json
    );
    assert!(
        answer.json["message"].as_str().is_some_and(|m| !m.contains(&row.id)),
        "no internals in the body"
    );
    assert_eq!(stack.ledger_counts().await?, before, "nothing written");
    // The batch step's name for it: fatal, never retried.
    let step = clearance_core::batch::StepError::from(clearance_core::ports::LedgerWriteError::Invariant(
        "x".into(),
    ));
    assert_eq!(step.name(), clearance_core::batch::ERROR_FATAL);
    stack.drop().await
}
