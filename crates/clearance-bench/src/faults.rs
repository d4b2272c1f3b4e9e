//! The faults the reliability run injects, and the queue it counts events
//! on (DESIGN.md, "Money rules"):
//! - [`BusOutage`]: a loopback proxy in front of moto's EventBridge that
//!   refuses connections for a window (its listening socket closed, the
//!   connections it carried cut);
//! - [`FailAfterFinalize`]: the real batch ledger, whose finalize commits
//!   and then reports a lost connection: once for some jobs (the retry finds
//!   the clearance posted), on every attempt for others (compensation finds
//!   it posted);
//! - [`QueueTap`]: an SQS queue behind a rule on the bus, drained to count
//!   what reached it by event id.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use clearance_core::batch::{BatchLedger, JobScope, Release};
use clearance_core::clearance::{Check, ClearanceHeader, Posting, SnapshotRowRef};
use clearance_core::outbox::{ClearanceEvent, EventOutbox};
use clearance_core::ports::{BackendError, LedgerWriteError, Posted};
use clearance_pg::batch::PgBatchLedger;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use uuid::Uuid;

/// Attempts to listen again on the proxy's port when the outage ends.
const REBIND_ATTEMPTS: u32 = 50;

/// A proxy on a loopback port that carries connections to `upstream`, or
/// refuses them while down.
pub struct BusOutage {
    addr: SocketAddr,
    down: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl BusOutage {
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        anyhow::ensure!(upstream.ip().is_loopback(), "the bench talks to loopback only");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (down, watching) = watch::channel(false);
        let task = tokio::spawn(serve(listener, addr, upstream, watching));
        Ok(Self { addr, down, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Refuses connections from now on (`true`), or carries them again.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

impl Drop for BusOutage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts while up; while down holds no listening socket, so connections
/// are refused. Ends when the [`BusOutage`] is dropped.
async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut down: watch::Receiver<bool>,
) {
    let mut listener = Some(listener);
    loop {
        if let Some(open) = listener.take() {
            tokio::select! {
                accepted = open.accept() => {
                    if let Ok((socket, _)) = accepted {
                        tokio::spawn(carry(socket, upstream, down.clone()));
                    }
                    listener = Some(open);
                }
                changed = down.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Down: `open` is dropped here, the port refuses.
                    if !*down.borrow_and_update() {
                        listener = Some(open);
                    }
                }
            }
        } else {
            if down.changed().await.is_err() {
                return;
            }
            if !*down.borrow_and_update() {
                listener = rebind(addr).await;
            }
        }
    }
}

async fn rebind(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..REBIND_ATTEMPTS {
        if let Ok(listener) = TcpListener::bind(addr).await {
            return Some(listener);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Carries one connection until either side closes or the outage begins.
async fn carry(mut client: TcpStream, upstream: SocketAddr, mut down: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    let outage = async move {
        while !*down.borrow_and_update() {
            if down.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        () = outage => {}
    }
}

/// The real batch ledger, failing after finalize committed.
pub struct FailAfterFinalize {
    inner: PgBatchLedger,
    failed_once: Mutex<HashSet<Uuid>>,
    /// Failures reported after a commit.
    pub injected: AtomicU64,
}

impl FailAfterFinalize {
    pub fn new(inner: PgBatchLedger) -> Self {
        Self { inner, failed_once: Mutex::new(HashSet::new()), injected: AtomicU64::new(0) }
    }

    /// Jobs whose clearance id starts with an even byte fail after every
    /// finalize, the others after their first.
    fn fails(&self, clearance_id: Uuid) -> bool {
        let always = clearance_id.as_bytes()[0] % 2 == 0;
        let first = self.failed_once.lock().map(|mut seen| seen.insert(clearance_id)).unwrap_or(false);
        always || first
    }
}

impl BatchLedger for FailAfterFinalize {
    async fn reserve(&self, scope: &JobScope, rows: &[SnapshotRowRef]) -> Result<u64, LedgerWriteError> {
        self.inner.reserve(scope, rows).await
    }

    async fn finalize(
        &self,
        scope: &JobScope,
        row_count: u64,
        check: &Check,
        posting: &Posting,
        header: &ClearanceHeader,
    ) -> Result<Posted, LedgerWriteError> {
        let posted = self.inner.finalize(scope, row_count, check, posting, header).await?;
        if self.fails(scope.clearance_id) {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(LedgerWriteError::Backend(BackendError::new(
                "injected: the connection dropped after the finalize committed",
            )));
        }
        Ok(posted)
    }

    async fn release(&self, scope: &JobScope, failed: &ClearanceEvent) -> Result<Release, LedgerWriteError> {
        self.inner.release(scope, failed).await
    }
}

impl EventOutbox for FailAfterFinalize {
    async fn claim(
        &self,
        only: Option<Uuid>,
        limit: u32,
        claim_secs: u32,
    ) -> Result<Vec<ClearanceEvent>, BackendError> {
        self.inner.claim(only, limit, claim_secs).await
    }

    async fn settle(&self, published: &[Uuid], unpublished: &[Uuid]) -> Result<(), BackendError> {
        self.inner.settle(published, unpublished).await
    }
}

/// An SQS queue that receives every `clearance` event of a bus.
pub struct QueueTap {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl QueueTap {
    /// # Errors
    /// When moto refuses a call.
    pub async fn attach(
        events: &aws_sdk_eventbridge::Client,
        bus: &str,
        endpoint: &str,
    ) -> anyhow::Result<Self> {
        let sdk = clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await;
        let client = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk).endpoint_url(endpoint).build(),
        );
        let queue_url = client
            .create_queue()
            .queue_name(format!("{bus}-tap"))
            .send()
            .await?
            .queue_url
            .context("queue url")?;
        let arn = client
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .context("queue arn")?;
        events
            .put_rule()
            .name("bench-tap")
            .event_bus_name(bus)
            .event_pattern(r#"{"source": ["clearance"]}"#)
            .send()
            .await?;
        events
            .put_targets()
            .rule("bench-tap")
            .event_bus_name(bus)
            .targets(aws_sdk_eventbridge::types::Target::builder().id("queue").arn(arn).build()?)
            .send()
            .await?;
        Ok(Self { client, queue_url })
    }

    /// Deliveries per event id, receiving until every id of `expected`
    /// arrived and then `quiet_polls` more polls brought nothing, or
    /// `polls_max` polls passed.
    ///
    /// # Errors
    /// When SQS refuses a call.
    pub async fn count(
        &self,
        expected: &HashSet<Uuid>,
        quiet_polls: u32,
        polls_max: u32,
    ) -> anyhow::Result<HashMap<Uuid, u32>> {
        let mut seen: HashMap<Uuid, u32> = HashMap::new();
        let mut quiet = 0;
        for _ in 0..polls_max {
            let out = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await?;
            let messages = out.messages.unwrap_or_default();
            for message in &messages {
                let event: serde_json::Value = serde_json::from_str(message.body().unwrap_or("null"))?;
                if let Some(id) = event["detail"]["event_id"].as_str().and_then(|id| Uuid::try_parse(id).ok())
                {
                    *seen.entry(id).or_default() += 1;
                }
                if let Some(handle) = message.receipt_handle() {
                    self.client
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
            }
            let complete = expected.iter().all(|id| seen.contains_key(id));
            quiet = if messages.is_empty() && complete { quiet + 1 } else { 0 };
            if quiet >= quiet_polls {
                break;
            }
        }
        Ok(seen)
    }
}
