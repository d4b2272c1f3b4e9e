//! Idempotency records: one item per (operator, key), pk
//! `idem#<key>#<operator>` (keys hold no `#`, so the split is unambiguous),
//! with `request_hash`, `state` (`in_flight` | `done`), `lease_until`, the
//! stored `status` and `body` once done, and `expires_at` (the table's TTL).
//! Every write is conditional.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use clearance_core::idempotency::{Claim, Existing, IdempotencyKey, IdempotencyStore, StoredResponse};
use clearance_core::ports::BackendError;
use clearance_core::snapshot::OperatorId;

use crate::{backend, n, s};

fn key(operator: &OperatorId, key: &IdempotencyKey) -> AttributeValue {
    AttributeValue::S(format!("idem#{}#{}", key.as_str(), operator.as_str()))
}

fn num(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[derive(Clone)]
pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
}

impl DynamoIdempotencyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

fn existing(item: &HashMap<String, AttributeValue>) -> Result<Existing, BackendError> {
    let response = if s(item, "state")? == "done" {
        Some(StoredResponse {
            status: n(item, "status")?,
            body: item
                .get("body")
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec())
                .ok_or_else(|| BackendError::new("idempotency record: body"))?,
        })
    } else {
        None
    };
    Ok(Existing {
        request_hash: s(item, "request_hash")?,
        response,
        lease_until_secs: n(item, "lease_until")?,
    })
}

fn condition_failed<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    matches!(err, SdkError::ServiceError(e) if e.err().code() == Some("ConditionalCheckFailedException"))
}

impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim(
        &self,
        operator: &OperatorId,
        idem: &IdempotencyKey,
        request_hash: &str,
        now_secs: i64,
        lease_until_secs: i64,
        expires_at_secs: i64,
    ) -> Result<Claim, BackendError> {
        // This call's own mark: when a first attempt of the PutItem wrote
        // the record but its answer was lost (an attempt timeout), the SDK's
        // retry fails the condition on our own record, which the mark
        // tells from another request's.
        let claim_id = uuid::Uuid::new_v4().to_string();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", key(operator, idem))
            .item("claim_id", AttributeValue::S(claim_id.clone()))
            .item("request_hash", AttributeValue::S(request_hash.to_owned()))
            .item("state", AttributeValue::S("in_flight".into()))
            .item("lease_until", num(lease_until_secs))
            .item("expires_at", num(expires_at_secs))
            // A record past its expiry is gone, whatever TTL's lazy deletion did.
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", num(now_secs))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(Claim::Claimed),
            Err(e) if condition_failed(&e) => {}
            Err(e) => return Err(backend(e)),
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", key(operator, idem))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        match out.item {
            Some(item) if item.get("claim_id").and_then(|v| v.as_s().ok()) == Some(&claim_id) => {
                Ok(Claim::Claimed)
            }
            Some(item) => Ok(Claim::Existing(existing(&item)?)),
            // Released between our two calls: report it as in flight; the
            // client's retry will claim it.
            None => Ok(Claim::Existing(Existing {
                request_hash: request_hash.to_owned(),
                response: None,
                lease_until_secs: i64::MAX,
            })),
        }
    }

    async fn take_over(
        &self,
        operator: &OperatorId,
        idem: &IdempotencyKey,
        old_lease_until_secs: i64,
        lease_until_secs: i64,
    ) -> Result<bool, BackendError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(operator, idem))
            .update_expression("SET lease_until = :new")
            .condition_expression("#state = :in_flight AND lease_until = :old")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_flight", AttributeValue::S("in_flight".into()))
            .expression_attribute_values(":old", num(old_lease_until_secs))
            .expression_attribute_values(":new", num(lease_until_secs))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn complete(
        &self,
        operator: &OperatorId,
        idem: &IdempotencyKey,
        request_hash: &str,
        response: &StoredResponse,
    ) -> Result<(), BackendError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", key(operator, idem))
            .update_expression("SET #state = :done, #status = :status, body = :body")
            .condition_expression("request_hash = :hash")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", AttributeValue::S("done".into()))
            .expression_attribute_values(":status", num(i64::from(response.status)))
            .expression_attribute_values(":body", AttributeValue::B(Blob::new(response.body.clone())))
            .expression_attribute_values(":hash", AttributeValue::S(request_hash.to_owned()))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn release(
        &self,
        operator: &OperatorId,
        idem: &IdempotencyKey,
        request_hash: &str,
        lease_until_secs: i64,
    ) -> Result<(), BackendError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", key(operator, idem))
            // Only our own claim: a take-over set another lease.
            .condition_expression("request_hash = :hash AND #state = :in_flight AND lease_until = :mine")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":hash", AttributeValue::S(request_hash.to_owned()))
            .expression_attribute_values(":in_flight", AttributeValue::S("in_flight".into()))
            .expression_attribute_values(":mine", num(lease_until_secs))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}
