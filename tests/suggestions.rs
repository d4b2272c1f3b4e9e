//! Suggested matches (`POST /v1/searches/{id}/suggestions`) over the real
//! PostgreSQL and DynamoDB (moto): proposals are read from the snapshot
//! alone, each is a selection a clearance takes as it is, and the guard
//! still decides.

use std::collections::BTreeMap;
use std::time::Duration;

use clearance_core::write::WriteConfig;
use clearance_tests::write_api::{send, Apis, Stack};
use http::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const FILTER: &str = r#"{"treaty_ids": ["TR-0001"], "period_from": "2021-01", "period_to": "2025-12", "currency": "USD", "status": "open"}"#;
const OP: Option<(&str, &str)> = Some(("op-suggest", "*"));

/// A snapshot with every row as the page JSON gives it.
struct Snap {
    id: String,
    token: String,
    rows: Vec<Value>,
}

async fn snapshot(apis: &Apis) -> anyhow::Result<Snap> {
    let first = send(&apis.read, Method::POST, "/v1/searches", FILTER.as_bytes(), OP, None).await;
    anyhow::ensure!(first.status == 200, "search: {}", first.json);
    let id = first.json["snapshot_id"].as_str().unwrap_or_default().to_owned();
    let token = first.json["version_token"].as_str().unwrap_or_default().to_owned();
    let mut rows: Vec<Value> = first.json["page"]["rows"].as_array().cloned().unwrap_or_default();
    for n in 1..first.json["page_count"].as_u64().unwrap_or(0) {
        let page =
            send(&apis.read, Method::GET, &format!("/v1/searches/{id}/pages/{n}"), b"", OP, None).await;
        rows.extend(page.json["rows"].as_array().cloned().unwrap_or_default());
    }
    Ok(Snap { id, token, rows })
}

fn amount(row: &Value) -> Decimal {
    row["amount"].as_str().and_then(|a| a.parse().ok()).unwrap_or_default()
}

/// The rows of each cedent and period, in snapshot order.
fn groups(snap: &Snap) -> BTreeMap<(String, String), Vec<&Value>> {
    let mut groups: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for row in &snap.rows {
        let key = (
            row["cedent_id"].as_str().unwrap_or("").to_owned(),
            row["accounting_period"].as_str().unwrap_or("").to_owned(),
        );
        groups.entry(key).or_default().push(row);
    }
    groups
}

async fn suggest(apis: &Apis, snap: &Snap, body: &Value) -> clearance_tests::write_api::Reply {
    let path = format!("/v1/searches/{}/suggestions", snap.id);
    send(&apis.read, Method::POST, &path, body.to_string().as_bytes(), OP, None).await
}

fn ids_of(suggestion: &Value) -> Vec<String> {
    let ids = suggestion["selection"]["ids"].as_array().cloned().unwrap_or_default();
    let mut ids: Vec<String> = ids.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_remittance_file_finds_its_rows_and_the_proposal_clears_as_it_is() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let snap = snapshot(&apis).await?;
    // Five positive rows of different references, quoted in another case
    // with their amounts, and a line the ledger does not know.
    let picked: Vec<&Value> =
        snap.rows.iter().filter(|r| amount(r) > Decimal::ZERO).step_by(97).take(5).collect();
    anyhow::ensure!(picked.len() == 5, "five rows");
    let total: Decimal = picked.iter().map(|r| amount(r)).sum();
    let mut csv = "Paid On,Reference,Amount\n".to_owned();
    for row in &picked {
        let reference = row["reference"].as_str().unwrap_or("").to_lowercase();
        csv.push_str(&format!("2024-07-01,{reference},{}\n", row["amount"].as_str().unwrap_or("")));
    }
    csv.push_str("2024-07-01,NOT-IN-LEDGER,10.00\n");
    let body = json!({ "check": { "amount": total.to_string(), "currency": "USD" }, "remittance_csv": csv });
    let answer = suggest(&apis, &snap, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["version_token"].as_str(), Some(snap.token.as_str()));
    let top = &answer.json["suggestions"][0];
    assert_eq!(
        (top["strategy"].as_str(), top["rank"].as_u64()),
        (Some("reference"), Some(1)),
        "{}",
        answer.json
    );
    let mut want: Vec<String> = picked.iter().map(|r| r["id"].as_str().unwrap_or("").to_owned()).collect();
    want.sort();
    assert_eq!(ids_of(top), want);
    assert_eq!(
        (top["difference"].as_str(), top["total"]["amount"].as_str()),
        (Some("0.00"), Some(total.to_string().as_str()))
    );
    assert_eq!(answer.json["unmatched"]["count"], 1);
    assert_eq!(
        answer.json["unmatched"]["lines"][0],
        json!({ "line": 6, "reference": "NOT-IN-LEDGER", "amount": "10.00", "reason": "no_row" })
    );
    // The proposal is a clearance's selection as it is.
    let clearance = json!({
        "snapshot_id": answer.json["snapshot_id"], "version_token": answer.json["version_token"],
        "selection": top["selection"],
        "check": { "number": "CHK-SUGGEST", "amount": total.to_string(), "currency": "USD", "received_on": "2024-07-01" },
    });
    let posted = send(
        &apis.write,
        Method::POST,
        "/v1/clearances",
        clearance.to_string().as_bytes(),
        OP,
        Some("suggest-1"),
    )
    .await;
    assert_eq!((posted.status, posted.json["row_count"].as_u64()), (201, Some(5)), "{}", posted.json);
    // The snapshot still shows them open, so they are still proposed; the
    // guard refuses them, nothing written.
    let again = suggest(&apis, &snap, &body).await;
    assert_eq!(ids_of(&again.json["suggestions"][0]), want);
    let before = stack.ledger_counts().await?;
    let replayed = send(
        &apis.write,
        Method::POST,
        "/v1/clearances",
        clearance.to_string().as_bytes(),
        OP,
        Some("suggest-2"),
    )
    .await;
    assert_eq!(
        (replayed.status, replayed.json["error"].as_str()),
        (409, Some("stale_snapshot")),
        "{}",
        replayed.json
    );
    assert_eq!(stack.ledger_counts().await?, before);
    stack.drop().await
}

#[tokio::test]
async fn whole_groups_and_exact_sums_are_ready_selections_read_from_the_snapshot_only() -> anyhow::Result<()>
{
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let snap = snapshot(&apis).await?;
    let groups = groups(&snap);
    let ((cedent, period), members) = groups
        .iter()
        .find(|(_, m)| m.len() >= 5 && m.iter().map(|r| amount(r)).sum::<Decimal>() > Decimal::ZERO)
        .ok_or_else(|| anyhow::anyhow!("no group of 5 rows"))?;
    let whole: Decimal = members.iter().map(|r| amount(r)).sum();
    // The ledger locked against every read: the answers come from DynamoDB.
    let mut lock = stack.db.owner.begin().await?;
    sqlx::query("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await?;
    let body = json!({ "check": { "amount": whole.to_string(), "currency": "USD" } });
    let answer = tokio::time::timeout(Duration::from_secs(20), suggest(&apis, &snap, &body)).await?;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let group = answer.json["suggestions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["strategy"] == "cedent_period")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no cedent_period proposal: {}", answer.json))?;
    assert_eq!(
        group["selection"],
        json!({ "all": true, "except": [], "view": { "cedent_id": [cedent], "currency": "USD", "period_from": period, "period_to": period } })
    );
    assert_eq!(group["row_count"].as_u64(), Some(members.len() as u64));
    // Three rows of the group: the search finds them, or other rows of the
    // same total; the same body, the same answer.
    let three: Decimal = members.iter().take(3).map(|r| amount(r)).sum();
    let body = json!({ "check": { "amount": three.abs().max(Decimal::ONE).to_string(), "currency": "USD" } });
    let first = suggest(&apis, &snap, &body).await;
    let second = suggest(&apis, &snap, &body).await;
    assert_eq!(first.json["suggestions"], second.json["suggestions"]);
    if three > Decimal::ZERO {
        let exact =
            first.json["suggestions"].as_array().into_iter().flatten().find(|s| s["strategy"] == "exact_sum");
        let exact = exact.ok_or_else(|| anyhow::anyhow!("no exact_sum proposal: {}", first.json))?;
        assert_eq!(exact["total"]["amount"].as_str(), Some(three.to_string().as_str()));
        assert_eq!(exact["difference"], "0.00");
    }
    lock.rollback().await?;
    // The group proposal previews as the group.
    let preview = json!({ "selection": group["selection"] });
    let summary = send(
        &apis.write,
        Method::POST,
        &format!("/v1/searches/{}/selection-summary", snap.id),
        preview.to_string().as_bytes(),
        OP,
        None,
    )
    .await;
    assert_eq!(summary.json["row_count"].as_u64(), Some(members.len() as u64), "{}", summary.json);
    assert_eq!(summary.json["totals"][0]["amount"].as_str(), Some(whole.to_string().as_str()));
    stack.drop().await
}

#[tokio::test]
async fn another_operator_or_a_withdrawn_treaty_gets_no_suggestion() -> anyhow::Result<()> {
    let stack = Stack::new(5_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let snap = snapshot(&apis).await?;
    let path = format!("/v1/searches/{}/suggestions", snap.id);
    let body = json!({ "check": { "amount": "100.00", "currency": "USD" } }).to_string();
    let other = send(&apis.read, Method::POST, &path, body.as_bytes(), Some(("op-other", "*")), None).await;
    assert_eq!((other.status, other.json["error"].as_str()), (404, Some("snapshot_not_found")));
    let withdrawn =
        send(&apis.read, Method::POST, &path, body.as_bytes(), Some(("op-suggest", "TR-0002")), None).await;
    assert_eq!((withdrawn.status, withdrawn.json["error"].as_str()), (403, Some("not_entitled")));
    stack.drop().await
}
