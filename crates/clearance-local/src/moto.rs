//! A moto server of one caller's own (a test's or the benchmark's), on a
//! free loopback port, so that it can be frozen (SIGSTOP: connections are
//! accepted, nothing answers) and thawed (SIGCONT) without touching the
//! server everything else uses. Started from the project's venv (`make up`
//! installs it); ended by its own process id when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long moto may take to answer after its start.
const START_WAIT_MAX: Duration = Duration::from_secs(30);

pub struct PrivateMoto {
    child: Child,
    pub endpoint: String,
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill").args([format!("-{name}"), pid.to_string()]).status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

impl PrivateMoto {
    /// Starts `moto_server` from `venv_bin` and waits until it answers.
    ///
    /// # Errors
    /// When the binary is missing or moto does not answer in time.
    pub async fn start(venv_bin: &Path) -> anyhow::Result<Self> {
        let binary = venv_bin.join("moto_server");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (run `make up`)", binary.display()))?;
        let moto = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        let probe = moto.dynamo().await;
        let started = Instant::now();
        while started.elapsed() < START_WAIT_MAX {
            if probe.list_tables().send().await.is_ok() {
                return Ok(moto);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("moto did not answer on {} within {START_WAIT_MAX:?}", moto.endpoint)
    }

    /// Freezes the server: connections are still accepted, nothing answers.
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn freeze(&self) -> anyhow::Result<()> {
        signal(self.child.id(), "STOP")
    }

    /// # Errors
    /// When the signal cannot be sent.
    pub fn thaw(&self) -> anyhow::Result<()> {
        signal(self.child.id(), "CONT")
    }

    /// A DynamoDB client as every process builds it (the one SDK
    /// configuration's timeouts and retries), on this server.
    pub async fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        let sdk = clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await;
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(&self.endpoint).build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// An EventBridge client as every process builds it, on this server.
    pub async fn events(&self) -> aws_sdk_eventbridge::Client {
        let sdk = clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await;
        let config = aws_sdk_eventbridge::config::Builder::from(&sdk).endpoint_url(&self.endpoint).build();
        aws_sdk_eventbridge::Client::from_conf(config)
    }
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        // Ours: thawed (a stopped process does not die of SIGTERM) and ended by its handle.
        let _ = signal(self.child.id(), "CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
