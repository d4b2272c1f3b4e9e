//! Every payload in `events/` through its function's entry point, against
//! the real PostgreSQL and moto: the API Gateway v2 events through
//! `clearance_lambda::handle` (lambda_http's own request parsing, identity
//! from the JWT claims), the Step Functions payloads through the batch
//! function's `handle_task`. Each gets the answer `events/README.md` names.

use clearance_core::write::WriteConfig;
use clearance_http::Api;
use clearance_tests::write_api::Stack;
use clearance_workflow::task::handle_task;

async fn http_event<A: Api>(api: &A, file: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let text = std::fs::read_to_string(format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR")))?;
    let request = lambda_http::request::from_str(&text)?;
    let response = clearance_lambda::handle(api, request).await;
    let status = response.status().as_u16();
    let body = match response.into_body() {
        lambda_http::Body::Binary(b) => b,
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Empty => Vec::new(),
        _ => Vec::new(),
    };
    Ok((status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)))
}

#[tokio::test]
async fn every_event_file_gets_its_documented_answer() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;

    let (status, search) = http_event(&apis.read, "search-apigw-v2.json").await?;
    assert_eq!(status, 200, "{search}");
    assert_eq!(search["cache"], "miss");
    assert!(search["row_count"].as_u64().unwrap_or(0) > 0);

    let (status, clearance) = http_event(&apis.write, "clearance-apigw-v2.json").await?;
    assert_eq!((status, clearance["error"].as_str()), (404, Some("snapshot_not_found")), "{clearance}");

    let (status, job) = http_event(&apis.jobs, "job-status-apigw-v2.json").await?;
    assert_eq!((status, job["error"].as_str()), (404, Some("job_not_found")), "{job}");

    for step in ["plan", "reserve", "finalize", "announce", "compensate"] {
        let text =
            std::fs::read_to_string(format!("{}/../events/batch-{step}.json", env!("CARGO_MANIFEST_DIR")))?;
        let payload: serde_json::Value = serde_json::from_str(&text)?;
        let answer = handle_task(&apis.steps, payload, 0).await;
        match answer {
            Err(e) => assert_eq!(e.name(), "Clearance.Fatal", "{step}: {e}"),
            Ok(v) => panic!("{step} of an unknown job answered {v}"),
        }
    }
    stack.drop().await
}
