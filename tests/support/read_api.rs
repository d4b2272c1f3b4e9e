//! The read API wired to the real PostgreSQL and the real (moto) DynamoDB,
//! with a counter on the ledger port: every database round trip of the read
//! path goes through it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use clearance_core::access::Identity;
use clearance_core::closes::ClosedPeriod;
use clearance_core::ports::{BackendError, LedgerReader, RowStream};
use clearance_core::read::{ReadConfig, ReadService};
use clearance_core::snapshot::{SearchFilter, VersionToken};
use clearance_dynamo::{DynamoScopeMirror, DynamoSnapshotStore};
use clearance_http::{Api, ApiRequest, ReadApi};
use clearance_pg::read::PgLedgerReader;
use http::Method;

/// Calls made to the ledger port, by method.
#[derive(Default)]
pub struct LedgerCalls {
    pub version_token: AtomicU32,
    pub stream_rows: AtomicU32,
}

impl LedgerCalls {
    pub fn total(&self) -> u32 {
        self.version_token.load(Ordering::SeqCst) + self.stream_rows.load(Ordering::SeqCst)
    }
}

pub struct CountingLedger {
    inner: PgLedgerReader,
    pub calls: Arc<LedgerCalls>,
}

impl LedgerReader for CountingLedger {
    async fn version_token(&self, filter: &SearchFilter) -> Result<VersionToken, BackendError> {
        self.calls.version_token.fetch_add(1, Ordering::SeqCst);
        self.inner.version_token(filter).await
    }

    async fn read_snapshot<'a>(
        &'a self,
        filter: &SearchFilter,
    ) -> Result<(VersionToken, RowStream<'a>), BackendError> {
        self.calls.stream_rows.fetch_add(1, Ordering::SeqCst);
        self.inner.read_snapshot(filter).await
    }

    async fn closed_periods(&self, filter: &SearchFilter) -> Result<Vec<ClosedPeriod>, BackendError> {
        self.inner.closed_periods(filter).await
    }
}

pub type TestReadApi = ReadApi<CountingLedger, DynamoSnapshotStore, DynamoScopeMirror>;

/// The read API over `pool` (the read-only role) and `table`.
pub fn read_api(
    pool: sqlx::PgPool,
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    config: ReadConfig,
) -> (TestReadApi, Arc<LedgerCalls>) {
    let calls = Arc::new(LedgerCalls::default());
    let ledger = CountingLedger { inner: PgLedgerReader::new(pool), calls: Arc::clone(&calls) };
    let service = ReadService::new(
        ledger,
        DynamoSnapshotStore::new(client.clone(), table),
        DynamoScopeMirror::new(client.clone(), table),
        config,
    );
    (ReadApi::new(service), calls)
}

/// A response: status and parsed JSON body (and its size in bytes).
pub struct Answer {
    pub status: u16,
    pub json: serde_json::Value,
    pub bytes: usize,
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Sends one request through the router, as a caller with `identity`
/// (operator, treaties) or none.
pub async fn call(
    api: &TestReadApi,
    method: Method,
    path_and_query: &str,
    body: &[u8],
    identity: Option<(&str, &str)>,
) -> Answer {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let response: http::Response<Bytes> = api
        .handle(ApiRequest {
            method: &method,
            base: "",
            path,
            query,
            body,
            headers: &http::HeaderMap::new(),
            identity: identity.map(|(op, treaties)| Identity::parse(op, treaties)),
            now_secs: now(),
        })
        .await;
    let status = response.status().as_u16();
    let bytes = response.body().len();
    let json = serde_json::from_slice(response.body()).unwrap_or(serde_json::Value::Null);
    Answer { status, json, bytes }
}
