//! `openapi.yaml` against the served API: the same routes as the local
//! server serves (each answered by a handler, not `route_not_found`), request
//! examples the handlers' own wire types accept, and the required fields of
//! each response schema present in real answers.

use std::collections::BTreeSet;

use clearance_core::write::WriteConfig;
use clearance_http::wire::{
    ClearanceRequestWire, PeriodRequestWire, ReversalRequestWire, SearchRequest, SelectionSummaryRequestWire,
    SuggestRequestWire,
};
use clearance_http::{Api, ROUTES};
use clearance_tests::write_api::{
    check_for, clearance_body, search, send, send_with_roles, LocalStack, Reply, Row, Stack,
};
use http::Method;
use serde_yaml::Value;

const DOC: &str = include_str!("../openapi.yaml");

fn doc() -> Result<Value, serde_yaml::Error> {
    serde_yaml::from_str(DOC)
}

/// Resolves a local `$ref`.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str().and_then(|r| r.strip_prefix("#/")) {
        Some(path) => path.split('/').fold(doc, |v, key| &v[key]),
        None => value,
    }
}

fn required(doc: &Value, schema: &str) -> Vec<String> {
    doc["components"]["schemas"][schema]["required"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

async fn route<R: clearance_core::batch::JobStarter>(
    apis: &LocalStack<R>,
    method: Method,
    path: &str,
    body: &[u8],
    key: Option<&str>,
) -> Reply {
    let who = Some(("op-doc", "*"));
    if apis.read.serves(path) {
        send(&apis.read, method, path, body, who, key).await
    } else if apis.write.serves(path) {
        send(&apis.write, method, path, body, who, key).await
    } else {
        send(&apis.jobs, method, path, body, who, key).await
    }
}

fn assert_has(doc: &Value, schema: &str, reply: &Reply) {
    for field in required(doc, schema) {
        assert!(
            reply.json.get(&field).is_some(),
            "{schema}.{field} missing from a real answer: {}",
            reply.json
        );
    }
}

#[test]
fn the_document_lists_exactly_the_routes_and_its_examples_parse() -> Result<(), Box<dyn std::error::Error>> {
    let doc = doc()?;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().ok_or("no paths")? {
        for (method, op) in item.as_mapping().ok_or("no operations")? {
            let method = method.as_str().unwrap_or_default().to_uppercase();
            documented.insert((method.clone(), path.as_str().unwrap_or_default().to_owned()));
            let responses = op["responses"].as_mapping().ok_or("no responses")?;
            for (status, response) in responses {
                let response = resolve(&doc, response);
                assert!(
                    response["description"].is_string(),
                    "{method} {path:?} {status:?} has no description"
                );
            }
            if let Some(example) = op["requestBody"]["content"]["application/json"]["example"].as_mapping() {
                let json = serde_json::to_vec(&example)?;
                let parsed = match path.as_str().unwrap_or_default() {
                    "/v1/searches" => serde_json::from_slice::<SearchRequest>(&json).map(|_| ()),
                    "/v1/clearances" => serde_json::from_slice::<ClearanceRequestWire>(&json).map(|_| ()),
                    "/v1/searches/{id}/selection-summary" => {
                        serde_json::from_slice::<SelectionSummaryRequestWire>(&json).map(|_| ())
                    }
                    "/v1/searches/{id}/suggestions" => {
                        serde_json::from_slice::<SuggestRequestWire>(&json).map(|_| ())
                    }
                    p if p.starts_with("/v1/treaties/") => {
                        serde_json::from_slice::<PeriodRequestWire>(&json).map(|_| ())
                    }
                    _ => serde_json::from_slice::<ReversalRequestWire>(&json).map(|_| ()),
                };
                parsed.map_err(|e| format!("the example of {method} {path:?} is refused: {e}"))?;
            }
        }
    }
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(documented, served, "openapi.yaml documents exactly the served routes");
    Ok(())
}

#[tokio::test]
async fn every_documented_route_is_served_and_answers_in_its_documented_shape() -> anyhow::Result<()> {
    let doc = doc()?;
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig { sync_rows_max: 5, ..WriteConfig::default() }).await?;
    let nil = uuid::Uuid::nil();
    for (method, template) in ROUTES {
        let path = template
            .replace("{id}", &nil.to_string())
            .replace("{n}", "0")
            .replace("{treaty_id}", "TR-0001")
            .replace("{period}", "2024-03");
        let method = Method::from_bytes(method.as_bytes())?;
        let reply = route(&apis, method.clone(), &path, b"{}", Some("doc-probe")).await;
        assert!(
            reply.json["error"] != "route_not_found" && reply.status != 405,
            "{method} {path} is not served: {}",
            reply.json
        );
        let documented = doc["paths"][template][method.as_str().to_lowercase()]["responses"]
            [reply.status.to_string()]
        .is_mapping();
        assert!(
            documented,
            "{method} {template} answered {}, which the document does not list",
            reply.status
        );
    }

    // Real answers carry every field their schema requires.
    let filter =
        r#"{"treaty_ids": ["TR-0001"], "period_from": "2024-01", "period_to": "2024-03", "currency": "USD"}"#;
    let searched = route(&apis, Method::POST, "/v1/searches", filter.as_bytes(), None).await;
    assert_has(&doc, "SearchResponse", &searched);
    assert_has(&doc, "Page", &Reply { json: searched.json["page"].clone(), ..searched.clone() });
    let snap = search(&apis, "op-doc", filter).await?;
    let view =
        format!("/v1/searches/{}/pages/0?sort=cedent_id,amount:desc&amount_min=0&reference=SOA", snap.id);
    let viewed = route(&apis, Method::GET, &view, b"", None).await;
    assert_eq!(viewed.status, 200, "{}", viewed.json);
    assert_has(&doc, "Page", &viewed);
    let preview = format!("/v1/searches/{}/selection-summary", snap.id);
    let body = br#"{"selection": {"all": true, "view": {"amount_min": "0"}}}"#;
    let previewed = route(&apis, Method::POST, &preview, body, None).await;
    assert_eq!(previewed.status, 200, "{}", previewed.json);
    assert_has(&doc, "SelectionSummary", &previewed);
    let suggest = format!("/v1/searches/{}/suggestions", snap.id);
    let body =
        br#"{"check": {"amount": "100.00", "currency": "USD"}, "remittance": [{"reference": "nope"}]}"#;
    let suggested = route(&apis, Method::POST, &suggest, body, None).await;
    assert_eq!(suggested.status, 200, "{}", suggested.json);
    assert_has(&doc, "Suggestions", &suggested);
    assert_eq!(suggested.json["unmatched"]["lines"][0]["reason"], "no_row");
    let rows: Vec<&Row> =
        snap.rows.iter().filter(|r| r.amount > rust_decimal::Decimal::ZERO).take(3).collect();
    let (check, allow) = check_for(&rows);
    let posted =
        route(&apis, Method::POST, "/v1/clearances", &clearance_body(&snap, &rows, check, allow), Some("d1"))
            .await;
    assert_eq!(posted.status, 201, "{}", posted.json);
    assert_has(&doc, "Clearance", &posted);
    let many: Vec<&Row> =
        snap.rows.iter().skip(3).filter(|r| r.amount > rust_decimal::Decimal::ZERO).take(10).collect();
    let (check, allow) = check_for(&many);
    let started =
        route(&apis, Method::POST, "/v1/clearances", &clearance_body(&snap, &many, check, allow), Some("d2"))
            .await;
    assert_eq!(started.status, 202, "{}", started.json);
    assert_has(&doc, "Job", &started);
    let job = route(
        &apis,
        Method::GET,
        &format!("/v1/jobs/{}", started.json["job_id"].as_str().unwrap_or("")),
        b"",
        None,
    )
    .await;
    assert_has(&doc, "Job", &job);
    let refused = route(&apis, Method::POST, "/v1/clearances", b"{", Some("d3")).await;
    assert_has(&doc, "Error", &refused);
    let close = "/v1/treaties/TR-0001/periods/2021-01/close";
    let closed = send_with_roles(&apis.write, close, b"{}", ("op-doc", "*", "closer"), "d4").await;
    assert_eq!(closed.status, 200, "{}", closed.json);
    assert_has(&doc, "PeriodEntry", &closed);
    let reopen = "/v1/treaties/TR-0001/periods/2021-01/reopen";
    let reopened =
        send_with_roles(&apis.write, reopen, br#"{"reason": "r"}"#, ("op-doc", "*", "closer"), "d5").await;
    assert_eq!(reopened.status, 200, "{}", reopened.json);
    assert_has(&doc, "PeriodEntry", &reopened);
    stack.drop().await
}
