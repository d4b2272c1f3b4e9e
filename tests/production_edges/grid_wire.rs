//! The grid's wire (DESIGN.md, "The grid's API": compression, caching, the
//! job's location), through the Lambda entry point on a named stage with
//! AWS's published event, and through the local server over loopback:
//! - gzip and br bodies decode to the plain body, with `Vary`;
//! - a page's strong `ETag` answers `If-None-Match` with 304 and no body,
//!   and a page gone stale gets another `ETag`;
//! - a 202 names its job's URL behind the stage, with `Retry-After`.

use std::io::Read;
use std::sync::Arc;

use clearance_core::write::WriteConfig;
use clearance_http::Api;
use clearance_tests::aws_fixtures::fixture;
use clearance_tests::write_api::Stack;
use serde_json::{json, Value};

const FILTER: &str =
    r#"{"treaty_ids": ["TR-0001"], "period_from": "2024-01", "period_to": "2024-12", "currency": "USD"}"#;

/// The published JWT-authorizer example as one request of ours on the
/// stage `dev`.
fn event(method: &str, path: &str, query: &str, headers: Value, body: &str) -> anyhow::Result<Value> {
    let mut event = fixture("example-apigw-v2-request-jwt-authorizer.json")?;
    let raw_path = format!("/dev{path}");
    event["routeKey"] = json!(format!("{method} {path}"));
    event["rawPath"] = json!(raw_path);
    event["rawQueryString"] = json!(query);
    event["queryStringParameters"] = Value::Null;
    event["headers"] = headers;
    let context = &mut event["requestContext"];
    context["routeKey"] = json!(format!("{method} {path}"));
    context["stage"] = json!("dev");
    context["http"]["method"] = json!(method);
    context["http"]["path"] = json!(raw_path);
    context["authorizer"]["jwt"]["claims"] = json!({ "sub": "operator-alice", "treaties": "*" });
    event["body"] = json!(body);
    event["isBase64Encoded"] = json!(false);
    Ok(event)
}

/// Status, headers and body bytes as the function answers.
async fn call<A: Api>(api: &A, event: &Value) -> anyhow::Result<(u16, http::HeaderMap, Vec<u8>)> {
    let request = lambda_http::request::from_str(&event.to_string())?;
    let response = clearance_lambda::handle(api, request).await;
    let (parts, body) = response.into_parts();
    let body = match body {
        lambda_http::Body::Binary(b) => b,
        lambda_http::Body::Text(t) => t.into_bytes(),
        _ => Vec::new(),
    };
    Ok((parts.status.as_u16(), parts.headers, body))
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn gunzip(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body).read_to_end(&mut plain)?;
    Ok(plain)
}

fn unbrotli(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut plain = Vec::new();
    brotli::Decompressor::new(body, 4096).read_to_end(&mut plain)?;
    Ok(plain)
}

#[tokio::test]
async fn pages_compress_revalidate_and_jobs_name_their_url_behind_the_stage() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig { sync_rows_max: 5, ..WriteConfig::default() }).await?;
    let (status, _, body) = call(
        &apis.read,
        &event("POST", "/v1/searches", "", json!({ "content-type": "application/json" }), FILTER)?,
    )
    .await?;
    assert_eq!(status, 200);
    let search: Value = serde_json::from_slice(&body)?;
    let id = search["snapshot_id"].as_str().unwrap_or_default().to_owned();
    let token = search["version_token"].as_str().unwrap_or_default().to_owned();
    let page = format!("/v1/searches/{id}/pages/0");

    // Plain, gzip and br: one body.
    let (_, plain_headers, plain) = call(&apis.read, &event("GET", &page, "", json!({}), "")?).await?;
    assert!(plain.len() > 1024 && plain_headers.get("content-encoding").is_none());
    assert_eq!(header(&plain_headers, "vary"), "accept-encoding");
    let (_, gz_headers, gz) =
        call(&apis.read, &event("GET", &page, "", json!({ "accept-encoding": "gzip, deflate" }), "")?)
            .await?;
    assert_eq!(header(&gz_headers, "content-encoding"), "gzip");
    assert_eq!(gunzip(&gz)?, plain);
    let (_, br_headers, br) =
        call(&apis.read, &event("GET", &page, "", json!({ "accept-encoding": "gzip, br" }), "")?).await?;
    assert_eq!(header(&br_headers, "content-encoding"), "br");
    assert_eq!(unbrotli(&br)?, plain);
    assert!(br.len() < gz.len() && gz.len() < plain.len() / 4, "{} {} {}", br.len(), gz.len(), plain.len());
    let rows = serde_json::from_slice::<Value>(&plain)?["rows"].as_array().map_or(0, Vec::len);
    eprintln!("a {rows}-row page: {} bytes plain, {} gzip, {} br", plain.len(), gz.len(), br.len());

    // The page's ETag: 304 with it and no body; another view, another tag.
    let etag = header(&plain_headers, "etag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10, "{etag}");
    assert_eq!(header(&plain_headers, "cache-control"), "private, no-cache");
    let (status, headers, body) =
        call(&apis.read, &event("GET", &page, "", json!({ "if-none-match": etag.clone() }), "")?).await?;
    assert_eq!((status, header(&headers, "etag"), body.len()), (304, etag.as_str(), 0));
    let (_, sorted, _) = call(&apis.read, &event("GET", &page, "sort=amount:desc", json!({}), "")?).await?;
    assert_ne!(header(&sorted, "etag"), etag);

    // A clearance of six rows is a job here: 202 with its URL on the stage.
    let rows: Vec<&Value> = search["page"]["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "open" && r["amount"].as_str().is_some_and(|a| !a.starts_with('-')))
        .take(6)
        .collect();
    let total: rust_decimal::Decimal =
        rows.iter().filter_map(|r| r["amount"].as_str()?.parse::<rust_decimal::Decimal>().ok()).sum();
    let clearance = json!({
        "snapshot_id": id, "version_token": token,
        "selection": { "ids": rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>() },
        "check": { "number": "CHK-9", "amount": total.to_string(), "currency": "USD", "received_on": "2024-07-01" },
    });
    let headers = json!({ "content-type": "application/json", "idempotency-key": "grid-job-1" });
    let (status, headers, body) =
        call(&apis.write, &event("POST", "/v1/clearances", "", headers, &clearance.to_string())?).await?;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let job: Value = serde_json::from_slice(&body)?;
    let job_id = job["job_id"].as_str().unwrap_or_default();
    assert_eq!(header(&headers, "location"), format!("/dev/v1/jobs/{job_id}"));
    assert_eq!(header(&headers, "retry-after"), "1");

    // The job clears the rows: page 0 is now stale, under another ETag.
    for _ in 0..100 {
        let (_, _, body) =
            call(&apis.jobs, &event("GET", &format!("/v1/jobs/{job_id}"), "", json!({}), "")?).await?;
        if serde_json::from_slice::<Value>(&body)?["state"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, stale_headers, stale) = call(&apis.read, &event("GET", &page, "", json!({}), "")?).await?;
    assert_eq!(serde_json::from_slice::<Value>(&stale)?["stale"], true);
    assert_ne!(header(&stale_headers, "etag"), etag, "a stale page is another representation");
    let (status, _, _) =
        call(&apis.read, &event("GET", &page, "", json!({ "if-none-match": etag }), "")?).await?;
    assert_eq!(status, 200, "the old tag no longer matches");
    stack.drop().await
}

#[tokio::test]
async fn the_local_server_compresses_the_same_way() -> anyhow::Result<()> {
    let stack = Stack::new(5_000).await?;
    let app = Arc::new(stack.apis(WriteConfig::default()).await?);
    let router = clearance_local::server::router(app, &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let search = |encoding: &'static str| {
        client
            .post(format!("{base}/v1/searches"))
            .header("x-dev-operator", "alice")
            .header("x-dev-treaties", "*")
            .header("accept-encoding", encoding)
            .body(FILTER)
            .send()
    };
    let plain = search("identity").await?;
    assert_eq!(plain.headers().get("vary").and_then(|v| v.to_str().ok()), Some("accept-encoding"));
    let plain: Value = serde_json::from_slice(&plain.bytes().await?)?;
    let gz = search("gzip").await?;
    assert_eq!(gz.headers().get("content-encoding").and_then(|v| v.to_str().ok()), Some("gzip"));
    let unzipped: Value = serde_json::from_slice(&gunzip(&gz.bytes().await?)?)?;
    // The same search twice: the second is a hit; the rows are the same.
    assert_eq!(unzipped["page"], plain["page"]);
    server.abort();
    stack.drop().await
}
