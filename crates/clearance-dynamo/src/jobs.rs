//! Batch jobs: the status item `job#<id>` (owner, treaty, state, chunk
//! counters, row count, clearance id, error, the plan as JSON, the set of
//! chunks counted) and one item per chunk `job#<id>#chunk#<k>` (its rows,
//! encoded by the core). Counters move with atomic ADDs guarded by the set,
//! so a re-delivered chunk is counted once; a job ends once.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use clearance_core::batch::{JobFailure, JobPlan, JobState, JobStatus, JobStore};
use clearance_core::ports::BackendError;
use clearance_core::snapshot::OperatorId;
use clearance_core::TreatyId;
use uuid::Uuid;

use crate::{backend, get_data, n, s, write_all};

fn job_key(job_id: Uuid) -> AttributeValue {
    AttributeValue::S(format!("job#{job_id}"))
}

fn chunk_key(job_id: Uuid, k: u32) -> String {
    format!("job#{job_id}#chunk#{k}")
}

fn num(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn corrupt(what: &str) -> BackendError {
    BackendError::new(format!("stored job item: {what}"))
}

fn conditional_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    err: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    matches!(err, aws_sdk_dynamodb::error::SdkError::ServiceError(e)
        if e.err().code() == Some("ConditionalCheckFailedException"))
}

#[derive(Clone)]
pub struct DynamoJobStore {
    client: Client,
    table: String,
}

impl DynamoJobStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    async fn item(&self, job_id: Uuid) -> Result<Option<HashMap<String, AttributeValue>>, BackendError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", job_key(job_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?
            .item)
    }
}

impl DynamoJobStore {
    /// The jobs still running, found by a scan: for the local server, which
    /// runs jobs in process, to resume them after a restart. (In AWS, Step
    /// Functions carries on by itself.) Bounded to `pages` scan pages.
    ///
    /// # Errors
    /// When a scan fails.
    pub async fn running_jobs(&self, pages: usize) -> Result<Vec<Uuid>, BackendError> {
        let mut found = Vec::new();
        let mut start = None;
        for _ in 0..pages {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :job) AND #state = :running")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":job", AttributeValue::S("job#".into()))
                .expression_attribute_values(":running", AttributeValue::S(JobState::Running.as_str().into()))
                .projection_expression("pk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                let id = item.get("pk").and_then(|v| v.as_s().ok()).and_then(|pk| pk.strip_prefix("job#"));
                if let Some(id) = id.and_then(|id| Uuid::try_parse(id).ok()) {
                    found.push(id);
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(found)
    }
}

fn status_of(job_id: Uuid, item: &HashMap<String, AttributeValue>) -> Result<JobStatus, BackendError> {
    let error = match item.get("error").and_then(|v| v.as_s().ok()) {
        Some(json) => Some(serde_json::from_str::<JobFailure>(json).map_err(|_| corrupt("error"))?),
        None => None,
    };
    let clearance_id = match item.get("clearance_id").and_then(|v| v.as_s().ok()) {
        Some(id) => Some(Uuid::try_parse(id).map_err(|_| corrupt("clearance_id"))?),
        None => None,
    };
    Ok(JobStatus {
        job_id,
        owner: OperatorId::parse(&s(item, "owner")?).map_err(|_| corrupt("owner"))?,
        treaty_id: TreatyId::parse(&s(item, "treaty")?).map_err(|_| corrupt("treaty"))?,
        state: JobState::parse(&s(item, "state")?).ok_or_else(|| corrupt("state"))?,
        chunks_total: n(item, "chunks_total")?,
        chunks_done: n(item, "chunks_done")?,
        row_count: n(item, "row_count")?,
        clearance_id,
        error,
        created_at_secs: n(item, "created_at")?,
        updated_at_secs: n(item, "updated_at")?,
    })
}

impl JobStore for DynamoJobStore {
    async fn create(
        &self,
        status: &JobStatus,
        plan: &JobPlan,
        chunks: &[Vec<u8>],
        expires_at_secs: i64,
    ) -> Result<(), BackendError> {
        let requests = chunks
            .iter()
            .enumerate()
            .map(|(k, bytes)| {
                let put = PutRequest::builder()
                    .item("pk", AttributeValue::S(chunk_key(status.job_id, k as u32)))
                    .item("data", AttributeValue::B(Blob::new(bytes.clone())))
                    .item("expires_at", num(expires_at_secs))
                    .build()
                    .map_err(backend)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, BackendError>>()?;
        // Chunks first: a status item present means a complete job.
        write_all(&self.client, &self.table, &requests).await?;
        let plan_json = serde_json::to_string(plan).map_err(backend)?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", job_key(status.job_id))
            .item("owner", AttributeValue::S(status.owner.as_str().to_owned()))
            .item("treaty", AttributeValue::S(status.treaty_id.to_string()))
            .item("state", AttributeValue::S(status.state.as_str().into()))
            .item("chunks_total", num(status.chunks_total))
            .item("chunks_done", num(0))
            .item("row_count", num(status.row_count))
            .item("plan", AttributeValue::S(plan_json))
            .item("created_at", num(status.created_at_secs))
            .item("updated_at", num(status.updated_at_secs))
            .item("expires_at", num(expires_at_secs))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn status(&self, job_id: Uuid) -> Result<Option<JobStatus>, BackendError> {
        self.item(job_id).await?.map(|item| status_of(job_id, &item)).transpose()
    }

    async fn plan(&self, job_id: Uuid) -> Result<Option<JobPlan>, BackendError> {
        let Some(item) = self.item(job_id).await? else { return Ok(None) };
        let plan = serde_json::from_str(&s(&item, "plan")?).map_err(|_| corrupt("plan"))?;
        Ok(Some(plan))
    }

    async fn chunk(&self, job_id: Uuid, k: u32) -> Result<Option<Vec<u8>>, BackendError> {
        get_data(&self.client, &self.table, chunk_key(job_id, k)).await
    }

    async fn chunk_done(&self, job_id: Uuid, k: u32, now_secs: i64) -> Result<(), BackendError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", job_key(job_id))
            .update_expression("ADD chunks_done :one, done_chunks :k SET updated_at = :now")
            .condition_expression("attribute_exists(pk) AND NOT contains(done_chunks, :kn)")
            .expression_attribute_values(":one", num(1))
            .expression_attribute_values(":k", AttributeValue::Ns(vec![k.to_string()]))
            .expression_attribute_values(":kn", num(k))
            .expression_attribute_values(":now", num(now_secs))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn finish(
        &self,
        job_id: Uuid,
        state: JobState,
        clearance_id: Option<Uuid>,
        error: Option<&JobFailure>,
        now_secs: i64,
    ) -> Result<(), BackendError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", job_key(job_id))
            .condition_expression("#state = :running")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":running", AttributeValue::S(JobState::Running.as_str().into()))
            .expression_attribute_values(":state", AttributeValue::S(state.as_str().into()))
            .expression_attribute_values(":now", num(now_secs));
        let mut set = vec!["#state = :state", "updated_at = :now"];
        if let Some(id) = clearance_id {
            update = update.expression_attribute_values(":clearance", AttributeValue::S(id.to_string()));
            set.push("clearance_id = :clearance");
        }
        if let Some(error) = error {
            let json = serde_json::to_string(error).map_err(backend)?;
            update = update.expression_attribute_values(":error", AttributeValue::S(json));
            set.push("#error = :error");
            update = update.expression_attribute_names("#error", "error");
        }
        let result = update.update_expression(format!("SET {}", set.join(", "))).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}
