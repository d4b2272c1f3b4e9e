//! Lambda: the read path. Identity comes from the API Gateway JWT
//! authorizer's claims: `sub` (the operator) and `treaties` (entitled
//! treaty ids, or `*`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clearance_core::access::Identity;
use clearance_core::read::{ReadConfig, ReadService};
use clearance_core::snapshot::InputError;
use clearance_dynamo::{DynamoScopeMirror, DynamoSnapshotStore};
use clearance_http::config::ReadEnv;
use clearance_http::{ApiRequest, ReadApi};
use clearance_pg::read::PgLedgerReader;
use clearance_pg::PoolLimits;
use lambda_http::request::RequestContext;
use lambda_http::{run, service_fn, Body, Error, Request, RequestExt, Response};

fn claims_identity(request: &Request) -> Option<Result<Identity, InputError>> {
    let RequestContext::ApiGatewayV2(context) = request.request_context_ref()? else { return None };
    let claims = &context.authorizer.as_ref()?.jwt.as_ref()?.claims;
    let operator = claims.get("sub")?;
    Some(Identity::parse(operator, claims.get("treaties").map_or("", String::as_str)))
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let env = ReadEnv::from_env()?;
    let limits = PoolLimits {
        connections_max: env.db_connections_max,
        statement_timeout: env.statement_timeout,
        ..PoolLimits::default()
    };
    let pool = clearance_pg::connect_lazy(&env.database_url, limits)?;
    let dynamo = clearance_dynamo::client_from_env().await;
    let service = ReadService::new(
        PgLedgerReader::new(pool),
        DynamoSnapshotStore::new(dynamo.clone(), env.table.clone()),
        DynamoScopeMirror::new(dynamo, env.table.clone()),
        ReadConfig { snapshot_ttl_secs: env.snapshot_ttl_secs, ..ReadConfig::default() },
    );
    let api = Arc::new(ReadApi::new(service));
    run(service_fn(move |request: Request| {
        let api = Arc::clone(&api);
        async move {
            let response = api
                .handle(ApiRequest {
                    method: request.method(),
                    path: request.uri().path(),
                    query: request.uri().query(),
                    body: request.body().as_ref(),
                    identity: claims_identity(&request),
                    now_secs: now_secs(),
                })
                .await;
            let (parts, body) = response.into_parts();
            Ok::<_, Error>(Response::from_parts(parts, Body::Binary(body.to_vec())))
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = include_str!("../../../events/search-apigw-v2.json");

    #[test]
    fn the_operator_and_treaties_come_from_the_jwt_claims() -> Result<(), Box<dyn std::error::Error>> {
        let request = lambda_http::request::from_str(EVENT)?;
        let who = claims_identity(&request).ok_or("no identity")??;
        assert_eq!(who.operator.as_str(), "operator-alice");
        let allowed = |t: &str| clearance_core::TreatyId::parse(t).map(|t| who.entitlement.allows(&t));
        assert_eq!((allowed("TR-0001")?, allowed("TR-0002")?, allowed("TR-0003")?), (true, true, false));
        assert_eq!(request.uri().path(), "/v1/searches");
        Ok(())
    }

    #[test]
    fn a_request_without_an_authorizer_has_no_identity() -> Result<(), Box<dyn std::error::Error>> {
        let mut event: serde_json::Value = serde_json::from_str(EVENT)?;
        event["requestContext"]["authorizer"] = serde_json::Value::Null;
        let request = lambda_http::request::from_str(&event.to_string())?;
        assert!(claims_identity(&request).is_none());
        Ok(())
    }
}
