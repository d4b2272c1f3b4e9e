//! The whole system (read, write and job APIs, batch steps) wired to the
//! real PostgreSQL and the real (moto) DynamoDB and EventBridge, as the
//! local server composes it.

use bytes::Bytes;
use clearance_core::access::Identity;
use clearance_http::{Api, ApiRequest};
use http::{HeaderMap, HeaderValue, Method};

use crate::read_api::now;

pub use clearance_local::{LocalStack, StackConfig};

/// A response: status, body bytes and JSON, and whether it was a replay.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub json: serde_json::Value,
    pub replayed: bool,
}

/// Sends one request to `api` as `identity` (operator, treaties), with an
/// `Idempotency-Key` when `key` is given.
pub async fn send<A: Api>(
    api: &A,
    method: Method,
    path: &str,
    body: &[u8],
    identity: Option<(&str, &str)>,
    key: Option<&str>,
) -> Reply {
    let mut headers = HeaderMap::new();
    if let Some(key) = key {
        if let Ok(value) = HeaderValue::from_str(key) {
            headers.insert("idempotency-key", value);
        }
    }
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let response = api
        .handle(ApiRequest {
            method: &method,
            path,
            query,
            body,
            headers: &headers,
            identity: identity.map(|(op, treaties)| Identity::parse(op, treaties)),
            now_secs: now(),
        })
        .await;
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotency-replayed").is_some_and(|v| v == "true");
    let body = response.into_body();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Reply { status, body, json, replayed }
}

/// Items in a DynamoDB table (a scan, for before/after checks in tests).
///
/// # Errors
/// When the scan fails.
pub async fn item_count(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<i64> {
    let mut count = 0_i64;
    let mut start = None;
    for _ in 0..10_000 {
        let out = client
            .scan()
            .table_name(table)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        count += i64::from(out.count);
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    Ok(count)
}
