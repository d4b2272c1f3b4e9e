//! The whole system (read, write and job APIs, batch steps) wired to the
//! real PostgreSQL and the real (moto) DynamoDB and EventBridge, as the
//! local server composes it.

use bytes::Bytes;
use clearance_core::access::Identity;
use clearance_http::{Api, ApiRequest};
use http::{HeaderMap, HeaderValue, Method};

use crate::read_api::now;

pub use clearance_local::{LocalStack, Pools, StackConfig, Steps};

use std::sync::Arc;

use clearance_core::batch::JobStarter;
use clearance_core::write::WriteConfig;
use clearance_loader::generate::Generator;
use rust_decimal::Decimal;

use crate::dynamo::TestTable;
use crate::TestDb;

pub type Apis = LocalStack;

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
    let identity = identity.map(|(op, treaties)| Identity::parse(op, treaties));
    send_as(api, method, path, body, identity, key).await
}

/// Sends one request to `api` as operator `who` (operator, treaties) holding
/// `roles` (the JWT claim's spelling), with an `Idempotency-Key`.
pub async fn send_with_roles<A: Api>(
    api: &A,
    path: &str,
    body: &[u8],
    who: (&str, &str, &str),
    key: &str,
) -> Reply {
    let identity = Identity::parse(who.0, who.1).map(|i| i.with_roles(who.2));
    send_as(api, Method::POST, path, body, Some(identity), Some(key)).await
}

async fn send_as<A: Api>(
    api: &A,
    method: Method,
    path: &str,
    body: &[u8],
    identity: Option<Result<Identity, clearance_core::snapshot::InputError>>,
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
            base: "",
            path,
            query,
            body,
            headers: &headers,
            identity,
            now_secs: now(),
        })
        .await;
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotency-replayed").is_some_and(|v| v == "true");
    let body = response.into_body();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Reply { status, body, json, replayed }
}

/// The status of job `job_id` as `operator` (entitled to every treaty)
/// polls it, once it is no longer running: bounded (600 polls, 100 ms
/// apart), so a job that never ends comes back still `running`.
pub async fn job_when_done<R: JobStarter>(
    apis: &LocalStack<R>,
    operator: &str,
    job_id: &str,
) -> serde_json::Value {
    let path = format!("/v1/jobs/{job_id}");
    let mut status = serde_json::Value::Null;
    for _ in 0..600 {
        status = send(&apis.jobs, Method::GET, &path, b"", Some((operator, "*")), None).await.json;
        if status["state"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    status
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

/// A row of a snapshot as the grid shows it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub amount: Decimal,
}

/// A search as the grid holds it: the snapshot and every row of it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub token: String,
    pub rows: Vec<Row>,
}

/// A database loaded with generated rows, a table and an event bus of
/// their own, and a pool for 16 concurrent operators.
pub struct Stack {
    pub db: TestDb,
    pub table: TestTable,
    pub pool: sqlx::PgPool,
    pub events: aws_sdk_eventbridge::Client,
    pub bus: String,
}

impl Stack {
    /// # Errors
    /// When PostgreSQL or moto cannot be reached.
    pub async fn new(rows: u64) -> anyhow::Result<Self> {
        let db = TestDb::new().await?;
        clearance_pg::load::load(&db.owner, &mut Generator::new(11).with_rows(rows)).await?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .connect_with(db.app.connect_options().as_ref().clone())
            .await?;
        let table = TestTable::new().await?;
        let events = clearance_workflow::EventBridgePublisher::client(
            &clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await,
        );
        let bus = format!("{}-bus", table.name);
        clearance_workflow::events::ensure_bus(&events, &bus).await?;
        Ok(Self { db, table, pool, events, bus })
    }

    pub fn config(&self, write: WriteConfig) -> StackConfig {
        StackConfig { write, ..StackConfig::new(self.table.name.clone(), self.bus.clone()) }
    }

    /// The read path as the read-only role, the rest as the application role.
    fn pools(&self) -> Pools {
        Pools { reader: self.db.reader.clone(), app: self.pool.clone() }
    }

    /// The system with the in-process runner starting jobs.
    ///
    /// # Errors
    /// Never today; kept fallible for the callers' `?`.
    pub async fn apis(&self, config: WriteConfig) -> anyhow::Result<Apis> {
        Ok(LocalStack::new(self.pools(), &self.table.client, &self.events, &self.config(config)))
    }

    /// The system publishing to the bus through `events` (a refusing
    /// endpoint, say).
    pub fn apis_on_bus(&self, config: WriteConfig, events: &aws_sdk_eventbridge::Client) -> Apis {
        LocalStack::new(self.pools(), &self.table.client, events, &self.config(config))
    }

    /// Deletes the DynamoDB item under `pk` (an idempotency record or a
    /// job's status, as their TTL would).
    ///
    /// # Errors
    /// When moto refuses.
    pub async fn delete_item(&self, pk: &str) -> anyhow::Result<()> {
        self.table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()))
            .send()
            .await?;
        Ok(())
    }

    /// The system with `starter(steps)` starting jobs.
    pub fn apis_with<R: JobStarter>(
        &self,
        config: WriteConfig,
        starter: impl FnOnce(Arc<Steps>) -> R,
    ) -> LocalStack<R> {
        LocalStack::with_starter(
            self.pools(),
            &self.table.client,
            &self.events,
            &self.config(config),
            starter,
        )
    }

    /// # Errors
    /// When the query fails.
    pub async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(sql).fetch_one(&self.db.owner).await?)
    }

    /// Row counts of every ledger table and of cleared transactions.
    ///
    /// # Errors
    /// When a query fails.
    pub async fn ledger_counts(&self) -> anyhow::Result<[i64; 5]> {
        Ok([
            self.count("SELECT count(*) FROM clearances").await?,
            self.count("SELECT count(*) FROM clearance_lines").await?,
            self.count("SELECT count(*) FROM clearance_reversals").await?,
            self.count("SELECT count(*) FROM journal_entries").await?,
            self.count("SELECT count(*) FROM transactions WHERE status <> 'open'").await?,
        ])
    }

    /// # Errors
    /// When a drop fails.
    pub async fn drop(self) -> anyhow::Result<()> {
        self.pool.close().await;
        self.table.delete().await?;
        self.db.drop_db().await
    }
}

/// Searches as `operator` and reads every page of the snapshot.
///
/// # Errors
/// When the search fails or a page does not parse.
pub async fn search<R: JobStarter>(
    apis: &LocalStack<R>,
    operator: &str,
    filter: &str,
) -> anyhow::Result<Snapshot> {
    let first =
        send(&apis.read, Method::POST, "/v1/searches", filter.as_bytes(), Some((operator, "*")), None).await;
    anyhow::ensure!(first.status == 200, "search: {}", first.json);
    let id = first.json["snapshot_id"].as_str().unwrap_or_default().to_owned();
    let token = first.json["version_token"].as_str().unwrap_or_default().to_owned();
    let pages = first.json["page_count"].as_u64().unwrap_or(0);
    let mut rows = Vec::new();
    for n in 0..pages {
        let page = if n == 0 {
            first.json["page"].clone()
        } else {
            let path = format!("/v1/searches/{id}/pages/{n}");
            send(&apis.read, Method::GET, &path, b"", Some((operator, "*")), None).await.json
        };
        for row in page["rows"].as_array().into_iter().flatten() {
            rows.push(Row {
                id: row["id"].as_str().unwrap_or_default().to_owned(),
                amount: row["amount"].as_str().unwrap_or("x").parse()?,
            });
        }
    }
    Ok(Snapshot { id, token, rows })
}

pub fn clearance_body(snapshot: &Snapshot, rows: &[&Row], check: Decimal, allow_difference: bool) -> Vec<u8> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    serde_json::json!({
        "snapshot_id": snapshot.id,
        "version_token": snapshot.token,
        "selection": { "ids": ids },
        "check": { "number": "CHK-1001", "amount": check.to_string(), "currency": "USD", "received_on": "2024-07-01" },
        "allow_difference": allow_difference,
        "overpayment_to_unapplied": allow_difference,
    })
    .to_string()
    .into_bytes()
}

/// `base` with the member at `pointer` replaced or added, as a body: one
/// mistake in an otherwise valid request.
pub fn with_member(base: &serde_json::Value, pointer: &str, value: serde_json::Value) -> Vec<u8> {
    let mut body = base.clone();
    if let Some(slot) = body.pointer_mut(pointer) {
        *slot = value;
    } else if let Some((parent, name)) = pointer.rsplit_once('/') {
        if let Some(object) = body.pointer_mut(parent).and_then(|p| p.as_object_mut()) {
            object.insert(name.to_owned(), value);
        }
    }
    body.to_string().into_bytes()
}

/// Checks are positive: a selection netting to zero or less is paid by a
/// nominal check with the difference booked.
pub fn check_for(rows: &[&Row]) -> (Decimal, bool) {
    let total: Decimal = rows.iter().map(|r| r.amount).sum();
    if total > Decimal::ZERO {
        (total, false)
    } else {
        (Decimal::new(100, 2), true)
    }
}

pub async fn clear<R: JobStarter>(
    apis: &LocalStack<R>,
    operator: &str,
    snapshot: &Snapshot,
    rows: &[&Row],
    key: &str,
) -> Reply {
    let (check, allow) = check_for(rows);
    let body = clearance_body(snapshot, rows, check, allow);
    send(&apis.write, Method::POST, "/v1/clearances", &body, Some((operator, "*")), Some(key)).await
}
