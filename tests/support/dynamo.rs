//! A DynamoDB table of its own for one test, on the moto server `make up`
//! started (AWS_ENDPOINT_URL_DYNAMODB from `.dev/env`), created from the
//! template's definition.

use anyhow::Context;
use aws_sdk_dynamodb::Client;

pub struct TestTable {
    pub client: Client,
    pub name: String,
}

impl TestTable {
    /// # Errors
    /// When no local DynamoDB endpoint is configured or the table cannot be created.
    pub async fn new() -> anyhow::Result<Self> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").context(
            "AWS_ENDPOINT_URL_DYNAMODB is not set: run `make up` and source .dev/env (make test does)",
        )?;
        anyhow::ensure!(
            endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost"),
            "tests talk to a loopback DynamoDB only, not {endpoint}"
        );
        let client =
            clearance_dynamo::client(&clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await);
        let name = format!("clearance-test-{}", uuid::Uuid::new_v4().simple());
        clearance_dynamo::table::create(&client, &name).await?;
        Ok(Self { client, name })
    }

    /// # Errors
    /// When the delete fails.
    pub async fn delete(self) -> anyhow::Result<()> {
        clearance_dynamo::table::delete(&self.client, &self.name).await
    }
}
