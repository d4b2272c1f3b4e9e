//! DynamoDB adapter: the snapshot store and the scope-version mirror, in one
//! table whose only key is the string partition key `pk`.
//!
//! | item | `pk` | attributes |
//! |---|---|---|
//! | snapshot or view meta | `snapshot#<id>` | owner, filter, view_of, view_spec, treaties, token, row_count, page_count, page_size, summary (JSON), created_at, expires_at |
//! | page chunk | `snapshot#<id>#page#<n>` | data (zstd JSON), rows, expires_at |
//! | scope mirror | `scope#<treaty>` | version |
//! | batch job status | `job#<id>` | owner, treaty, state, chunks_total, chunks_done, done_chunks, row_count, clearance_id, error, plan, created_at, updated_at, expires_at |
//! | batch job chunk | `job#<id>#chunk#<k>` | data (the chunk's rows), expires_at |
//! | idempotency record | `idem#<key>#<operator>` | request_hash, state, lease_until, status, body, expires_at |
//!
//! Every chunk has its own partition key, so a hot page never throttles its
//! siblings, and is read with a strongly consistent GetItem. `expires_at` is
//! the table's TTL attribute (template.yaml).

pub mod idempotency;
pub mod jobs;
pub mod table;

pub use idempotency::DynamoIdempotencyStore;
pub use jobs::DynamoJobStore;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use clearance_core::pages::{Chunk, Summary};
use clearance_core::ports::{BackendError, ScopeMirror, SnapshotMeta, SnapshotStore};
use clearance_core::snapshot::{OperatorId, SnapshotId, VersionToken};
use clearance_core::TreatyId;

/// Attempts of a batch write whose items DynamoDB left unprocessed.
const BATCH_WRITE_ATTEMPTS: u32 = 8;
/// Keys per BatchGetItem of chunks: DynamoDB answers at most 100 items and
/// 16 MB, and a chunk is at most 350 KB.
const BATCH_GET_ITEMS_MAX: usize = 40;
/// Items per BatchWriteItem (DynamoDB's limit).
const BATCH_WRITE_ITEMS_MAX: usize = 25;

/// A client made from the process's one SDK configuration
/// (`clearance_aws::sdk_config`: its timeouts and retries; the endpoint the
/// environment names, AWS_ENDPOINT_URL_DYNAMODB locally).
pub fn client(sdk: &aws_config::SdkConfig) -> Client {
    Client::new(sdk)
}

fn meta_key(id: &SnapshotId) -> String {
    format!("snapshot#{id}")
}

fn chunk_key(id: &SnapshotId, number: u32) -> String {
    format!("snapshot#{id}#page#{number}")
}

fn scope_key(treaty: &TreatyId) -> String {
    format!("scope#{treaty}")
}

fn backend(err: impl std::error::Error + Send + Sync + 'static) -> BackendError {
    BackendError::new(err)
}

fn corrupt(what: &str) -> BackendError {
    BackendError::new(format!("stored snapshot item: {what}"))
}

#[derive(Clone)]
pub struct DynamoSnapshotStore {
    client: Client,
    table: String,
}

impl DynamoSnapshotStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    async fn write_all(&self, requests: &[WriteRequest]) -> Result<(), BackendError> {
        write_all(&self.client, &self.table, requests).await
    }
}

/// The `data` blob of the item `pk`, read strongly consistent; `None` when
/// absent.
pub(crate) async fn get_data(
    client: &Client,
    table: &str,
    pk: String,
) -> Result<Option<Vec<u8>>, BackendError> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend)?;
    Ok(out
        .item
        .and_then(|mut item| item.remove("data"))
        .and_then(|v| v.as_b().ok().map(|b| b.as_ref().to_vec())))
}

/// Writes every request, in batches of 25, retrying unprocessed items with
/// backoff a bounded number of times.
pub(crate) async fn write_all(
    client: &Client,
    table: &str,
    requests: &[WriteRequest],
) -> Result<(), BackendError> {
    for slice in requests.chunks(BATCH_WRITE_ITEMS_MAX) {
        let mut batch: Vec<WriteRequest> = slice.to_vec();
        let mut attempt = 0;
        while !batch.is_empty() {
            attempt += 1;
            if attempt > BATCH_WRITE_ATTEMPTS {
                return Err(BackendError::new(format!(
                    "{} writes still unprocessed after {BATCH_WRITE_ATTEMPTS} attempts",
                    batch.len()
                )));
            }
            let out = client.batch_write_item().request_items(table, batch).send().await.map_err(backend)?;
            batch = out.unprocessed_items.and_then(|mut m| m.remove(table)).unwrap_or_default();
            if !batch.is_empty() {
                tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
            }
        }
    }
    Ok(())
}

fn s(item: &HashMap<String, AttributeValue>, name: &str) -> Result<String, BackendError> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned().ok_or_else(|| corrupt(name))
}

fn n<T: std::str::FromStr>(item: &HashMap<String, AttributeValue>, name: &str) -> Result<T, BackendError> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).ok_or_else(|| corrupt(name))
}

impl SnapshotStore for DynamoSnapshotStore {
    async fn meta(&self, id: &SnapshotId) -> Result<Option<SnapshotMeta>, BackendError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(meta_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = out.item else { return Ok(None) };
        let treaty_ids = item
            .get("treaties")
            .and_then(|v| v.as_l().ok())
            .ok_or_else(|| corrupt("treaties"))?
            .iter()
            .map(|v| v.as_s().ok().and_then(|t| TreatyId::parse(t).ok()).ok_or_else(|| corrupt("treaties")))
            .collect::<Result<Vec<_>, _>>()?;
        let view_of = match (item.get("view_of"), item.get("view_spec")) {
            (Some(AttributeValue::S(base)), Some(AttributeValue::S(spec))) => {
                Some((SnapshotId::parse(base).map_err(|_| corrupt("view_of"))?, spec.clone()))
            }
            _ => None,
        };
        let summary: Summary = serde_json::from_str(&s(&item, "summary")?).map_err(|_| corrupt("summary"))?;
        Ok(Some(SnapshotMeta {
            id: id.clone(),
            owner: OperatorId::parse(&s(&item, "owner")?).map_err(|_| corrupt("owner"))?,
            filter: s(&item, "filter")?,
            view_of,
            treaty_ids,
            version_token: VersionToken::parse(&s(&item, "token")?).map_err(|_| corrupt("token"))?,
            row_count: n(&item, "row_count")?,
            page_count: n(&item, "page_count")?,
            page_size: n(&item, "page_size")?,
            summary,
            created_at_secs: n(&item, "created_at")?,
            expires_at_secs: n(&item, "expires_at")?,
        }))
    }

    async fn chunk(&self, id: &SnapshotId, number: u32) -> Result<Option<Vec<u8>>, BackendError> {
        get_data(&self.client, &self.table, chunk_key(id, number)).await
    }

    async fn chunks(&self, id: &SnapshotId, numbers: &[u32]) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        let mut found: HashMap<String, Vec<u8>> = HashMap::with_capacity(numbers.len());
        let mut pending: Vec<HashMap<String, AttributeValue>> = numbers
            .iter()
            .map(|n| HashMap::from([("pk".to_owned(), AttributeValue::S(chunk_key(id, *n)))]))
            .collect();
        for slice in pending.split_off(0).chunks(BATCH_GET_ITEMS_MAX) {
            let mut keys: Vec<HashMap<String, AttributeValue>> = slice.to_vec();
            let mut attempt = 0;
            while !keys.is_empty() {
                attempt += 1;
                if attempt > BATCH_WRITE_ATTEMPTS {
                    return Err(BackendError::new(format!(
                        "{} chunk reads still unprocessed after {BATCH_WRITE_ATTEMPTS} attempts",
                        keys.len()
                    )));
                }
                let request = KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build();
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request.map_err(backend)?)
                    .send()
                    .await
                    .map_err(backend)?;
                for mut item in out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                    let key = item.remove("pk").and_then(|v| v.as_s().ok().cloned());
                    let data = item.remove("data").and_then(|v| v.as_b().ok().map(|b| b.as_ref().to_vec()));
                    if let (Some(key), Some(data)) = (key, data) {
                        found.insert(key, data);
                    }
                }
                keys = out
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
                }
            }
        }
        Ok(numbers.iter().map(|n| found.remove(&chunk_key(id, *n))).collect())
    }

    async fn put_chunks(
        &self,
        id: &SnapshotId,
        chunks: &[Chunk],
        expires_at_secs: i64,
    ) -> Result<(), BackendError> {
        let requests = chunks
            .iter()
            .map(|chunk| {
                assert!(
                    chunk.bytes.len() <= clearance_core::pages::CHUNK_BYTES_MAX,
                    "a chunk over the item budget"
                );
                let put = PutRequest::builder()
                    .item("pk", AttributeValue::S(chunk_key(id, chunk.number)))
                    .item("data", AttributeValue::B(Blob::new(chunk.bytes.clone())))
                    .item("rows", AttributeValue::N(chunk.rows.to_string()))
                    .item("expires_at", AttributeValue::N(expires_at_secs.to_string()))
                    .build()
                    .map_err(backend)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, BackendError>>()?;
        self.write_all(&requests).await
    }

    async fn put_meta(&self, meta: &SnapshotMeta) -> Result<(), BackendError> {
        let summary = serde_json::to_string(&meta.summary).map_err(backend)?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(meta_key(&meta.id)))
            .item("owner", AttributeValue::S(meta.owner.as_str().to_owned()))
            .item("filter", AttributeValue::S(meta.filter.clone()))
            .item(
                "treaties",
                AttributeValue::L(meta.treaty_ids.iter().map(|t| AttributeValue::S(t.to_string())).collect()),
            )
            .item("token", AttributeValue::S(meta.version_token.to_string()))
            .item("row_count", AttributeValue::N(meta.row_count.to_string()))
            .item("page_count", AttributeValue::N(meta.page_count.to_string()))
            .item("page_size", AttributeValue::N(meta.page_size.to_string()))
            .item("summary", AttributeValue::S(summary))
            .item("created_at", AttributeValue::N(meta.created_at_secs.to_string()))
            .item("expires_at", AttributeValue::N(meta.expires_at_secs.to_string()));
        if let Some((base, spec)) = &meta.view_of {
            put = put
                .item("view_of", AttributeValue::S(base.to_string()))
                .item("view_spec", AttributeValue::S(spec.clone()));
        }
        put.send().await.map_err(backend)?;
        Ok(())
    }
}

#[derive(Clone)]
pub struct DynamoScopeMirror {
    client: Client,
    table: String,
}

impl DynamoScopeMirror {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

impl ScopeMirror for DynamoScopeMirror {
    async fn versions(&self, treaties: &[TreatyId]) -> Result<Vec<i64>, BackendError> {
        if treaties.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
        for treaty in treaties {
            keys = keys.keys(HashMap::from([("pk".to_owned(), AttributeValue::S(scope_key(treaty)))]));
        }
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.table, keys.build().map_err(backend)?)
            .send()
            .await
            .map_err(backend)?;
        if out.unprocessed_keys.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(BackendError::new("scope mirror read left keys unprocessed"));
        }
        let items = out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default();
        Ok(treaties
            .iter()
            .map(|t| {
                let key = scope_key(t);
                items
                    .iter()
                    .find(|item| item.get("pk").and_then(|v| v.as_s().ok()) == Some(&key))
                    .and_then(|item| n::<i64>(item, "version").ok())
                    .unwrap_or(0)
            })
            .collect())
    }

    async fn publish(&self, versions: &[(TreatyId, i64)]) -> Result<(), BackendError> {
        for (treaty, version) in versions {
            // Only ever raise: a publisher holding an older version (a slow
            // writer, a replay) must not move the mirror back.
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(scope_key(treaty)))
                .update_expression("SET version = :v")
                .condition_expression("attribute_not_exists(version) OR version < :v")
                .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(())
    }
}
