//! A frozen DynamoDB (moto stopped with SIGSTOP: connections accepted,
//! nothing answered) during a search, a page read, a job read and a
//! clearance: each answers 503 `backend_unavailable` with `Retry-After`
//! within 5 s, nothing is half-written, and once moto is thawed the same
//! process serves again, the clearance with its same key.

use std::time::{Duration, Instant};

use clearance_core::idempotency::IdempotencyConfig;
use clearance_loader::generate::Generator;
use clearance_local::{LocalStack, Pools, StackConfig};
use clearance_tests::private_moto;
use clearance_tests::write_api::{check_for, clearance_body, send, Reply, Row, Snapshot};
use clearance_tests::TestDb;
use http::Method;
use rust_decimal::Decimal;

const FILTER: &str = r#"{"treaty_ids": ["TR-0001"], "period_from": "2024-01", "period_to": "2024-12"}"#;
/// DESIGN.md: a frozen dependency is a 503 in bounded time; reads within 5 s.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
const OPERATOR: (&str, &str) = ("op-frozen", "*");

async fn timed<F: std::future::Future<Output = Reply>>(call: F) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = call.await;
    (reply, started.elapsed())
}

fn assert_unavailable(what: &str, reply: &Reply, took: Duration) {
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (503, Some("backend_unavailable")),
        "{what}: {}",
        reply.json
    );
    assert!(took <= ANSWER_WITHIN, "{what} took {took:?}");
}

#[tokio::test]
async fn a_frozen_dynamodb_is_a_bounded_503_and_a_thawed_one_serves_again() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut Generator::new(11).with_rows(5_000)).await?;
    let moto = private_moto::start().await?;
    let dynamo = moto.dynamo().await;
    let events = moto.events().await;
    clearance_dynamo::table::create(&dynamo, "frozen").await?;
    clearance_workflow::events::ensure_bus(&events, "frozen-bus").await?;
    // A short lease, so the retry after the thaw may take over the claim the
    // frozen attempt may have left.
    let config = StackConfig {
        idempotency: IdempotencyConfig { lease_secs: 2, ..IdempotencyConfig::default() },
        ..StackConfig::new("frozen", "frozen-bus")
    };
    let apis =
        LocalStack::new(Pools { reader: db.reader.clone(), app: db.app.clone() }, &dynamo, &events, &config);

    let first = send(&apis.read, Method::POST, "/v1/searches", FILTER.as_bytes(), Some(OPERATOR), None).await;
    assert_eq!(first.status, 200, "{}", first.json);
    let snapshot = Snapshot {
        id: first.json["snapshot_id"].as_str().unwrap_or_default().to_owned(),
        token: first.json["version_token"].as_str().unwrap_or_default().to_owned(),
        rows: first.json["page"]["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["currency"] == "USD" && r["status"] == "open")
            .filter_map(|r| {
                Some(Row { id: r["id"].as_str()?.to_owned(), amount: r["amount"].as_str()?.parse().ok()? })
            })
            .filter(|r| r.amount > Decimal::ZERO)
            .take(1)
            .collect(),
    };
    anyhow::ensure!(snapshot.rows.len() == 1, "no open USD row on the first page");
    let rows: Vec<&Row> = snapshot.rows.iter().collect();
    let (check, allow) = check_for(&rows);
    let body = clearance_body(&snapshot, &rows, check, allow);
    let page_path = format!("/v1/searches/{}/pages/0", snapshot.id);
    let job_path = format!("/v1/jobs/{}", uuid::Uuid::new_v4());

    moto.freeze()?;
    let (reply, took) =
        timed(send(&apis.read, Method::POST, "/v1/searches", FILTER.as_bytes(), Some(OPERATOR), None)).await;
    assert_unavailable("search", &reply, took);
    let (reply, took) = timed(send(&apis.read, Method::GET, &page_path, b"", Some(OPERATOR), None)).await;
    assert_unavailable("page", &reply, took);
    let (reply, took) = timed(send(&apis.jobs, Method::GET, &job_path, b"", Some(OPERATOR), None)).await;
    assert_unavailable("job", &reply, took);
    let (reply, took) =
        timed(send(&apis.write, Method::POST, "/v1/clearances", &body, Some(OPERATOR), Some("frozen-1")))
            .await;
    assert_unavailable("clearance", &reply, took);
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM clearances").fetch_one(&db.owner).await?;
    assert_eq!(written, 0, "nothing is written while the idempotency store is frozen");

    moto.thaw()?;
    let again = send(&apis.read, Method::POST, "/v1/searches", FILTER.as_bytes(), Some(OPERATOR), None).await;
    assert_eq!(again.status, 200, "{}", again.json);
    let page = send(&apis.read, Method::GET, &page_path, b"", Some(OPERATOR), None).await;
    assert_eq!(page.status, 200, "{}", page.json);
    let job = send(&apis.jobs, Method::GET, &job_path, b"", Some(OPERATOR), None).await;
    assert_eq!(job.json["error"], "job_not_found", "{}", job.json);
    // The same key goes through once the frozen attempt's claim (if it
    // landed after the thaw) has lapsed: bounded retries, as a client does.
    let mut cleared = None;
    for _ in 0..20 {
        let reply =
            send(&apis.write, Method::POST, "/v1/clearances", &body, Some(OPERATOR), Some("frozen-1")).await;
        match reply.status {
            201 => {
                cleared = Some(reply);
                break;
            }
            409 if reply.json["error"] == "request_in_flight" => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ => anyhow::bail!("after the thaw: {} {}", reply.status, reply.json),
        }
    }
    let cleared =
        cleared.ok_or_else(|| anyhow::anyhow!("the clearance never went through after the thaw"))?;
    let replay =
        send(&apis.write, Method::POST, "/v1/clearances", &body, Some(OPERATOR), Some("frozen-1")).await;
    assert!(replay.replayed && replay.json["clearance_id"] == cleared.json["clearance_id"]);
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM clearances").fetch_one(&db.owner).await?;
    assert_eq!(written, 1);
    let broken: Vec<_> =
        clearance_pg::audit::violations(&db.owner).await?.into_iter().filter(|(_, n)| *n > 0).collect();
    assert!(broken.is_empty(), "ledger audit: {broken:?}");
    drop(moto);
    db.drop_db().await
}
