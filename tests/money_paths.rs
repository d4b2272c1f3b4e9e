//! Money paths under failure (DESIGN.md, "Money rules"), against the real
//! PostgreSQL and moto's DynamoDB, EventBridge and SQS:
//! - events are never lost: a posting and a reversal made while the bus
//!   refuses connections reach the queue once it is back, once per id, the
//!   posting before the reversal;
//! - an idempotency key answers only its first request after its DynamoDB
//!   record is gone: the fingerprint the ledger keeps refuses another body.

use clearance_core::outbox::{ClearanceEvent, EventKind, EventOutbox};
use clearance_core::write::WriteConfig;
use clearance_pg::clear::PgClearanceLedger;
use clearance_tests::events::{refusing_client, EventTap};
use clearance_tests::write_api::{clear, search, send, Stack};
use http::Method;
use uuid::Uuid;

const FILTER: &str = r#"{"treaty_ids": ["TR-0001"], "period_from": "2024-01", "period_to": "2024-06", "currency": "USD", "status": "open"}"#;

const UNPUBLISHED: &str = "SELECT count(*) FROM event_outbox WHERE published_at IS NULL";

#[tokio::test]
async fn a_posting_and_a_reversal_made_while_the_bus_refuses_arrive_once_it_is_back() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let tap = EventTap::attach(&stack.events, &stack.bus).await?;
    let down = stack.apis_on_bus(WriteConfig::default(), &refusing_client().await?);
    let snap = search(&down, "op-a", FILTER).await?;
    let rows: Vec<_> = snap.rows.iter().take(3).collect();

    // Both answered: the ledger holds them, the bus is someone else's outage.
    let posted = clear(&down, "op-a", &snap, &rows, "k-1").await;
    assert_eq!(posted.status, 201, "{}", posted.json);
    let id = Uuid::try_parse(posted.json["clearance_id"].as_str().unwrap_or_default())?;
    let reversal = format!("/v1/clearances/{id}/reversal");
    let body = br#"{"reason": "check CHK-1001 bounced"}"#;
    let reversed = send(&down.write, Method::POST, &reversal, body, Some(("op-a", "*")), Some("r-1")).await;
    assert_eq!(reversed.status, 200, "{}", reversed.json);
    assert_eq!(stack.count(UNPUBLISHED).await?, 2, "both events wait in the outbox");
    assert!(clearance_tests::events::kinds_and_ids(&tap, 1).await?.is_empty());

    // Of one clearance only its oldest unpublished event can be claimed:
    // the reversal never overtakes the posting.
    let outbox = PgClearanceLedger::new(stack.pool.clone());
    let claimed = outbox.claim(Some(id), 10, 30).await?;
    assert_eq!(claimed.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::ClearancePosted]);
    outbox.settle(&[], &[claimed[0].event_id]).await?;

    // The bus back: the scheduled drain (the local server's, here called
    // once) publishes both, each once, in order.
    let up = stack.apis(WriteConfig::default()).await?;
    let drained = up.steps.drain_outbox(50).await?;
    assert_eq!((drained.published, drained.left), (2, 0));
    assert_eq!(up.steps.drain_outbox(50).await?.published, 0, "nothing published twice");
    let mut events = clearance_tests::events::kinds_and_ids(&tap, 3).await?;
    events.sort();
    let mut expected = vec![
        ("ClearancePosted".to_owned(), ClearanceEvent::id_for(EventKind::ClearancePosted, id).to_string()),
        (
            "ClearanceReversed".to_owned(),
            ClearanceEvent::id_for(EventKind::ClearanceReversed, id).to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(events, expected);
    let order: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM event_outbox WHERE clearance_id = $1 ORDER BY published_at")
            .bind(id)
            .fetch_all(&stack.db.owner)
            .await?;
    assert_eq!(order, ["ClearancePosted", "ClearanceReversed"]);
    assert_eq!(stack.count(UNPUBLISHED).await?, 0);

    // A replay of the posting publishes nothing again.
    let again = clear(&up, "op-a", &snap, &rows, "k-1").await;
    assert_eq!((again.status, again.replayed), (201, true));
    assert!(clearance_tests::events::kinds_and_ids(&tap, 1).await?.is_empty());
    stack.drop().await
}

#[tokio::test]
async fn a_key_answers_only_its_first_request_after_its_record_is_gone() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let snap = search(&apis, "op-a", FILTER).await?;
    let first: Vec<_> = snap.rows.iter().take(2).collect();
    let other: Vec<_> = snap.rows.iter().skip(2).take(1).collect();

    let posted = clear(&apis, "op-a", &snap, &first, "k-1").await;
    assert_eq!(posted.status, 201, "{}", posted.json);
    let id = posted.json["clearance_id"].as_str().unwrap_or_default().to_owned();
    let kept: Option<String> =
        sqlx::query_scalar("SELECT request_hash FROM clearances").fetch_one(&stack.db.owner).await?;
    assert_eq!(kept.map(|h| h.len()), Some(64), "the ledger keeps the fingerprint");

    // The DynamoDB record expires (deleted here): the ledger still says no.
    stack.delete_item("idem#k-1#op-a").await?;
    let before = stack.ledger_counts().await?;
    let reused = clear(&apis, "op-a", &snap, &other, "k-1").await;
    assert_eq!(
        (reused.status, reused.json["error"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{}",
        reused.json
    );
    assert_eq!(stack.ledger_counts().await?, before, "nothing written");
    // The same request is still answered with its clearance: the refusal
    // left no record under the key to refuse it with.
    let same = clear(&apis, "op-a", &snap, &first, "k-1").await;
    assert_eq!((same.status, same.json["clearance_id"].as_str()), (201, Some(id.as_str())), "{}", same.json);
    assert_eq!(stack.ledger_counts().await?, before);

    // A reversal's key likewise; and a clearance's key never reverses.
    let reversal = format!("/v1/clearances/{id}/reversal");
    let reverse = |reason: &'static str, key: &'static str| {
        let body = serde_json::json!({ "reason": reason }).to_string();
        let (apis, path) = (&apis, reversal.clone());
        async move {
            send(&apis.write, Method::POST, &path, body.as_bytes(), Some(("op-a", "*")), Some(key)).await
        }
    };
    assert_eq!(reverse("bounced", "r-1").await.status, 200);
    stack.delete_item("idem#r-1#op-a").await?;
    let before = stack.ledger_counts().await?;
    let reused = reverse("keyed wrong", "r-1").await;
    assert_eq!((reused.status, reused.json["error"].as_str()), (422, Some("idempotency_key_reused")));
    assert_eq!(reverse("bounced", "r-1").await.status, 200, "the same reversal, answered again");
    stack.delete_item("idem#k-1#op-a").await?;
    let crossed = reverse("bounced", "k-1").await;
    assert_eq!((crossed.status, crossed.json["error"].as_str()), (422, Some("idempotency_key_reused")));
    assert_eq!(stack.ledger_counts().await?, before, "nothing written");
    stack.drop().await
}
