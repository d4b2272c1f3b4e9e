//! Lambda: job status (`GET /v1/jobs/{id}`): one consistent read of the
//! job's status item in DynamoDB, no database connection.

use clearance_dynamo::DynamoJobStore;
use clearance_http::JobsApi;
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    clearance_lambda::init_logs();
    let table = std::env::var("CLEARANCE_TABLE")
        .map_err(|_| Error::from("configuration: CLEARANCE_TABLE is not set"))?;
    let dynamo = clearance_dynamo::client_from_env().await;
    clearance_lambda::run(JobsApi::new(DynamoJobStore::new(dynamo, table))).await
}
