//! AWS's published API Gateway v2 event (the JWT-authorizer example shipped
//! by `aws_lambda_events`) through each HTTP function's entry point, for
//! every route, in the three shapes a deployed API delivers: the `$default`
//! stage, the named stage the template deploys (`rawPath` carries
//! `/dev`, `requestContext.stage` is `dev`), and a custom domain with a base
//! path mapping. Each reaches its handler (never `route_not_found`).

use clearance_core::write::WriteConfig;
use clearance_http::Api;
use clearance_tests::aws_fixtures::fixture;
use clearance_tests::write_api::{Apis, Stack};
use serde_json::{json, Value};

const FILTER: &str = r#"{"treaty_ids": ["TR-0001"], "period_from": "2024-01", "period_to": "2024-12"}"#;

/// A way API Gateway delivers a request: its stage and the path prefix.
struct Shape {
    stage: &'static str,
    prefix: &'static str,
}

const SHAPES: [Shape; 3] = [
    Shape { stage: "$default", prefix: "" },
    Shape { stage: "dev", prefix: "/dev" },
    Shape { stage: "$default", prefix: "/clearance" },
];

/// The published JWT-authorizer example, made into one request of ours:
/// route, path, stage, claims and body replaced; every other member as AWS
/// publishes it.
fn event(base: &Value, shape: &Shape, method: &str, route: &str, path: &str, body: &str) -> Value {
    let mut event = base.clone();
    let raw_path = format!("{}{path}", shape.prefix);
    event["routeKey"] = json!(format!("{method} {route}"));
    event["rawPath"] = json!(raw_path);
    event["rawQueryString"] = json!("");
    event["queryStringParameters"] = Value::Null;
    event["headers"] = json!({
        "content-type": "application/json",
        "idempotency-key": uuid::Uuid::new_v4().to_string(),
    });
    let context = &mut event["requestContext"];
    context["routeKey"] = json!(format!("{method} {route}"));
    context["stage"] = json!(shape.stage);
    context["http"]["method"] = json!(method);
    context["http"]["path"] = json!(raw_path);
    context["authorizer"]["jwt"]["claims"] =
        json!({ "sub": "operator-alice", "treaties": "[TR-0001 TR-0002]", "roles": "[closer viewer]" });
    event["body"] = json!(body);
    event["isBase64Encoded"] = json!(false);
    event
}

async fn call<A: Api>(api: &A, event: &Value) -> anyhow::Result<(u16, Value)> {
    let request = lambda_http::request::from_str(&event.to_string())?;
    let response = clearance_lambda::handle(api, request).await;
    let status = response.status().as_u16();
    let body = match response.into_body() {
        lambda_http::Body::Binary(b) => b,
        lambda_http::Body::Text(t) => t.into_bytes(),
        _ => Vec::new(),
    };
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Every route once in `shape`; returns what was answered, by route.
async fn every_route(apis: &Apis, base: &Value, shape: &Shape) -> anyhow::Result<Vec<(String, u16, Value)>> {
    let mut answers = Vec::new();
    let (status, search) =
        call(&apis.read, &event(base, shape, "POST", "/v1/searches", "/v1/searches", FILTER)).await?;
    answers.push(("POST /v1/searches".to_owned(), status, search.clone()));
    let id = search["snapshot_id"].as_str().unwrap_or_default().to_owned();
    let token = search["version_token"].as_str().unwrap_or_default().to_owned();
    let row = search["page"]["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["status"] == "open" && r["amount"].as_str().is_some_and(|a| !a.starts_with('-')))
        .cloned()
        .unwrap_or(Value::Null);
    let page_path = format!("/v1/searches/{id}/pages/0");
    let (status, page) =
        call(&apis.read, &event(base, shape, "GET", "/v1/searches/{id}/pages/{n}", &page_path, "")).await?;
    answers.push(("GET /v1/searches/{id}/pages/{n}".to_owned(), status, page));
    let summary_path = format!("/v1/searches/{id}/selection-summary");
    let preview = json!({ "selection": { "ids": [row["id"]] } }).to_string();
    let (status, summary) = call(
        &apis.write,
        &event(base, shape, "POST", "/v1/searches/{id}/selection-summary", &summary_path, &preview),
    )
    .await?;
    answers.push(("POST /v1/searches/{id}/selection-summary".to_owned(), status, summary));
    let suggest_path = format!("/v1/searches/{id}/suggestions");
    let check = json!({ "check": { "amount": row["amount"], "currency": row["currency"] } }).to_string();
    let (status, suggested) =
        call(&apis.read, &event(base, shape, "POST", "/v1/searches/{id}/suggestions", &suggest_path, &check))
            .await?;
    answers.push(("POST /v1/searches/{id}/suggestions".to_owned(), status, suggested));
    let clearance = json!({
        "snapshot_id": id, "version_token": token,
        "selection": { "ids": [row["id"]] },
        "check": { "number": "CHK-STAGE", "amount": row["amount"], "currency": row["currency"], "received_on": "2024-07-01" },
    });
    let (status, posted) = call(
        &apis.write,
        &event(base, shape, "POST", "/v1/clearances", "/v1/clearances", &clearance.to_string()),
    )
    .await?;
    answers.push(("POST /v1/clearances".to_owned(), status, posted.clone()));
    let clearance_path = format!("/v1/clearances/{}", posted["clearance_id"].as_str().unwrap_or_default());
    let (status, got) =
        call(&apis.write, &event(base, shape, "GET", "/v1/clearances/{id}", &clearance_path, "")).await?;
    answers.push(("GET /v1/clearances/{id}".to_owned(), status, got));
    let reversal = json!({ "reason": "stage path test" }).to_string();
    let reversal_path = format!("{clearance_path}/reversal");
    let (status, reversed) = call(
        &apis.write,
        &event(base, shape, "POST", "/v1/clearances/{id}/reversal", &reversal_path, &reversal),
    )
    .await?;
    answers.push(("POST /v1/clearances/{id}/reversal".to_owned(), status, reversed));
    let job_path = format!("/v1/jobs/{}", uuid::Uuid::new_v4());
    let (status, job) = call(&apis.jobs, &event(base, shape, "GET", "/v1/jobs/{id}", &job_path, "")).await?;
    answers.push(("GET /v1/jobs/{id}".to_owned(), status, job));
    // A closer (the roles claim as API Gateway renders a JWT array) closes
    // and reopens a period.
    for (action, body) in [("close", "{}"), ("reopen", r#"{"reason": "stage path test"}"#)] {
        let route = format!("/v1/treaties/{{treaty_id}}/periods/{{period}}/{action}");
        let path = format!("/v1/treaties/TR-0002/periods/2021-01/{action}");
        let (status, entry) = call(&apis.write, &event(base, shape, "POST", &route, &path, body)).await?;
        answers.push((format!("POST {route}"), status, entry));
    }
    Ok(answers)
}

#[tokio::test]
async fn every_route_answers_on_the_default_stage_a_named_stage_and_a_base_path() -> anyhow::Result<()> {
    let base = fixture("example-apigw-v2-request-jwt-authorizer.json")?;
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    for shape in &SHAPES {
        let answers = every_route(&apis, &base, shape).await?;
        let expected = [200, 200, 200, 200, 201, 200, 200, 404, 200, 200];
        assert_eq!(answers.len(), clearance_http::ROUTES.len());
        for ((route, status, body), want) in answers.iter().zip(expected) {
            assert_eq!(*status, want, "{} {route} on stage {}: {body}", shape.prefix, shape.stage);
            assert_ne!(body["error"], "route_not_found", "{route}");
        }
        // The unknown job is the handler's answer, not the router's.
        assert_eq!(answers[7].2["error"], "job_not_found");
        assert_eq!(answers[2].2["row_count"], 1, "the summary of the row cleared next");
        let proposed = answers[3].2["suggestions"].as_array().cloned().unwrap_or_default();
        assert!(proposed.iter().any(|s| s["strategy"] == "single_row"), "{}", answers[3].2);
    }
    stack.drop().await
}

#[tokio::test]
async fn a_path_outside_the_api_is_still_route_not_found_on_a_named_stage() -> anyhow::Result<()> {
    let base = fixture("example-apigw-v2-request-jwt-authorizer.json")?;
    let stack = Stack::new(1_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    let shape = &SHAPES[1];
    for path in ["/v2/searches", "/searches", "/dev"] {
        let (status, body) = call(&apis.read, &event(&base, shape, "POST", "$default", path, FILTER)).await?;
        assert_eq!((status, body["error"].as_str()), (404, Some("route_not_found")), "{path}");
    }
    stack.drop().await
}
