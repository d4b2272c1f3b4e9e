//! Reading what reached an EventBridge bus on moto: a rule on the bus sends
//! every `clearance` event to an SQS queue of the test's own, which the test
//! drains (bounded polls).

use anyhow::Context;
use aws_sdk_sqs::Client;

pub struct EventTap {
    client: Client,
    queue_url: String,
}

impl EventTap {
    /// Attaches a queue to `bus` through a rule matching source `clearance`.
    ///
    /// # Errors
    /// When moto refuses a call.
    pub async fn attach(events: &aws_sdk_eventbridge::Client, bus: &str) -> anyhow::Result<Self> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        // moto serves every service on one endpoint; SQS rides the DynamoDB one.
        let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").context("AWS_ENDPOINT_URL_DYNAMODB")?;
        let sqs = aws_sdk_sqs::config::Builder::from(&config).endpoint_url(endpoint).build();
        let client = Client::from_conf(sqs);
        let queue_url = client
            .create_queue()
            .queue_name(format!("{bus}-tap"))
            .send()
            .await?
            .queue_url
            .context("no queue url")?;
        let arn = client
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .context("no queue arn")?;
        events
            .put_rule()
            .name("tap")
            .event_bus_name(bus)
            .event_pattern(r#"{"source": ["clearance"]}"#)
            .send()
            .await?;
        events
            .put_targets()
            .rule("tap")
            .event_bus_name(bus)
            .targets(aws_sdk_eventbridge::types::Target::builder().id("queue").arn(arn).build()?)
            .send()
            .await?;
        Ok(Self { client, queue_url })
    }

    /// The events delivered so far, as EventBridge wraps them (`detail-type`,
    /// `detail`, ...), polling until `expected` arrived or 20 polls passed.
    ///
    /// # Errors
    /// When a receive fails or a body does not parse.
    pub async fn drain(&self, expected: usize) -> anyhow::Result<Vec<serde_json::Value>> {
        self.drain_within(expected, 20).await
    }

    /// As [`EventTap::drain`], polling at most `polls` seconds: to show
    /// that no more than `expected - 1` events came, ask for one more.
    pub async fn drain_within(&self, expected: usize, polls: u32) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut seen = Vec::new();
        for _ in 0..polls {
            let out = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await?;
            for message in out.messages.unwrap_or_default() {
                seen.push(serde_json::from_str(message.body().unwrap_or("null"))?);
            }
            if seen.len() >= expected {
                break;
            }
        }
        Ok(seen)
    }
}

/// `(detail-type, event_id)` of the events on the queue, polling at most 3 s
/// for `most` (ask one more than expected to see there are no more).
///
/// # Errors
/// When SQS refuses a call.
pub async fn kinds_and_ids(tap: &EventTap, most: usize) -> anyhow::Result<Vec<(String, String)>> {
    Ok(tap
        .drain_within(most, 3)
        .await?
        .iter()
        .map(|e| {
            (
                e["detail-type"].as_str().unwrap_or_default().to_owned(),
                e["detail"]["event_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// An EventBridge client on a loopback port nothing listens on (the bus
/// refusing connections), with the production SDK bounds.
///
/// # Errors
/// When no loopback port can be found.
pub async fn refusing_client() -> anyhow::Result<aws_sdk_eventbridge::Client> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let sdk = clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await;
    let config = aws_sdk_eventbridge::config::Builder::from(&sdk)
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    Ok(aws_sdk_eventbridge::Client::from_conf(config))
}
