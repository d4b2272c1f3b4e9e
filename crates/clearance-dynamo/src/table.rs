//! The table's definition, read from `template.yaml` (the single definition
//! the SAM template deploys), and table creation from it for local use and
//! tests.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

/// `template.yaml`, embedded at build time.
const TEMPLATE: &str = include_str!("../../../template.yaml");
/// The logical id of the table in the template.
pub const TABLE_RESOURCE: &str = "ClearanceTable";

/// The table's key schema, attributes, billing mode and TTL attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    pub attributes: Vec<(String, String)>,
    pub keys: Vec<(String, String)>,
    pub billing_mode: String,
    pub ttl_attribute: Option<String>,
}

/// Reads the table definition from the template.
///
/// # Errors
/// When the template does not hold the table resource in the expected shape.
pub fn definition() -> anyhow::Result<TableDefinition> {
    let template: serde_yaml::Value = serde_yaml::from_str(TEMPLATE)?;
    let props = &template["Resources"][TABLE_RESOURCE]["Properties"];
    let pairs = |list: &serde_yaml::Value, a: &str, b: &str| -> anyhow::Result<Vec<(String, String)>> {
        list.as_sequence()
            .ok_or_else(|| anyhow::anyhow!("{TABLE_RESOURCE}: missing list"))?
            .iter()
            .map(|e| {
                let x = e[a].as_str().ok_or_else(|| anyhow::anyhow!("{TABLE_RESOURCE}: missing {a}"))?;
                let y = e[b].as_str().ok_or_else(|| anyhow::anyhow!("{TABLE_RESOURCE}: missing {b}"))?;
                Ok((x.to_owned(), y.to_owned()))
            })
            .collect()
    };
    Ok(TableDefinition {
        attributes: pairs(&props["AttributeDefinitions"], "AttributeName", "AttributeType")?,
        keys: pairs(&props["KeySchema"], "AttributeName", "KeyType")?,
        billing_mode: props["BillingMode"].as_str().unwrap_or("PROVISIONED").to_owned(),
        ttl_attribute: props["TimeToLiveSpecification"]["AttributeName"].as_str().map(str::to_owned),
    })
}

/// Creates a table named `name` from the template's definition, with TTL on.
///
/// # Errors
/// When the definition cannot be read or DynamoDB refuses.
pub async fn create(client: &Client, name: &str) -> anyhow::Result<()> {
    let def = definition()?;
    let mut request =
        client.create_table().table_name(name).billing_mode(BillingMode::from(def.billing_mode.as_str()));
    for (attribute, kind) in &def.attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()?,
        );
    }
    for (attribute, kind) in &def.keys {
        request = request.key_schema(
            KeySchemaElement::builder()
                .attribute_name(attribute)
                .key_type(KeyType::from(kind.as_str()))
                .build()?,
        );
    }
    request.send().await?;
    if let Some(attribute) = def.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().attribute_name(attribute).enabled(true).build()?,
            )
            .send()
            .await?;
    }
    Ok(())
}

/// Creates the table unless it exists.
///
/// # Errors
/// As [`create`], or when DescribeTable fails otherwise than "not found".
pub async fn ensure(client: &Client, name: &str) -> anyhow::Result<()> {
    match client.describe_table().table_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
            create(client, name).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes a table (tests clean up their own).
///
/// # Errors
/// When DynamoDB refuses.
pub async fn delete(client: &Client, name: &str) -> anyhow::Result<()> {
    client.delete_table().table_name(name).send().await?;
    Ok(())
}
