//! The local AWS stack and the workspace, seen from a test.
//!
//! Endpoints come from the environment `scripts/devstack env` exports (`AWS_ENDPOINT_URL_S3`,
//! `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_XRAY`, or one
//! `AWS_ENDPOINT_URL` for all). S3 and SQS are LocalStack, DynamoDB and the X-Ray API are moto.
//!
//! A test that needs an emulator calls [`require_localstack`] or [`require_moto`] first: they fail the
//! test, with what to run, when the emulator is not there. Tests are never skipped silently.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::Value;

use crate::util::random_hex;

pub use crate::http::https_request;
pub use crate::http::request as http_request;
use crate::{Error, Result};

const DEFAULT_REGION: &str = "us-east-1";
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const START_STACK: &str =
    "run `scripts/devstack up` and `eval \"$(scripts/devstack env)\"`, or `make test`";

/// An AWS service the local stack serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// S3 (LocalStack).
    S3,
    /// SQS (LocalStack).
    Sqs,
    /// SNS (LocalStack).
    Sns,
    /// DynamoDB (moto).
    DynamoDb,
    /// The X-Ray API (moto).
    Xray,
}

impl Service {
    /// The service-specific endpoint variable aws-config reads, e.g. `AWS_ENDPOINT_URL_SQS`.
    /// <https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html>
    pub fn endpoint_env_var(self) -> &'static str {
        match self {
            Service::S3 => "AWS_ENDPOINT_URL_S3",
            Service::Sqs => "AWS_ENDPOINT_URL_SQS",
            Service::Sns => "AWS_ENDPOINT_URL_SNS",
            Service::DynamoDb => "AWS_ENDPOINT_URL_DYNAMODB",
            Service::Xray => "AWS_ENDPOINT_URL_XRAY",
        }
    }
}

/// The endpoint URL of `service`: its own variable, else `AWS_ENDPOINT_URL`.
///
/// # Panics
/// When neither is set, with what to run.
pub fn endpoint(service: Service) -> String {
    let variable = service.endpoint_env_var();
    std::env::var(variable)
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|_| panic!("{variable} (or AWS_ENDPOINT_URL) is not set: {START_STACK}"))
}

/// `AWS_REGION`, else `us-east-1`.
pub fn region() -> String {
    std::env::var("AWS_REGION").unwrap_or_else(|_| DEFAULT_REGION.to_owned())
}

/// Fails the test unless LocalStack answers its health check with S3, SQS, SNS, EventBridge and
/// Step Functions up.
///
/// # Panics
/// When LocalStack is not reachable or a service is not up.
pub async fn require_localstack() {
    for url in distinct([endpoint(Service::S3), endpoint(Service::Sqs)]) {
        let health_url = format!("{}/_localstack/health", url.trim_end_matches('/'));
        let health = match crate::http::get(&health_url, HEALTH_TIMEOUT).await {
            Ok((status, body)) if status.is_success() => {
                serde_json::from_slice::<Value>(&body).ok()
            }
            Ok((status, _)) => panic!(
                "LocalStack is not reachable at {url} (health check: {status}): {START_STACK}"
            ),
            Err(error) => panic!("LocalStack is not reachable at {url} ({error}): {START_STACK}"),
        };
        for service in ["s3", "sqs", "sns", "events", "stepfunctions"] {
            let state = health
                .as_ref()
                .and_then(|health| health.pointer(&format!("/services/{service}")))
                .and_then(Value::as_str)
                .unwrap_or("missing");
            assert!(
                matches!(state, "available" | "running"),
                "LocalStack at {url} reports {service} as {state:?}: start it with SERVICES=s3,sqs,sns,events,stepfunctions ({START_STACK})"
            );
        }
    }
}

/// Fails the test unless moto answers at the DynamoDB and X-Ray endpoints.
///
/// # Panics
/// When moto is not reachable.
pub async fn require_moto() {
    for url in distinct([endpoint(Service::DynamoDb), endpoint(Service::Xray)]) {
        // moto's own API; any AWS emulator other than moto answers 404 here.
        let probe = format!("{}/moto-api/data.json", url.trim_end_matches('/'));
        match crate::http::get(&probe, HEALTH_TIMEOUT).await {
            Ok((status, _)) if status.is_success() => {}
            Ok((status, _)) => panic!(
                "moto is not answering at {url} (GET /moto-api/data.json: {status}): {START_STACK}"
            ),
            Err(error) => panic!("moto is not reachable at {url} ({error}): {START_STACK}"),
        }
    }
}

fn distinct(urls: [String; 2]) -> Vec<String> {
    let [first, second] = urls;
    if first == second {
        vec![first]
    } else {
        vec![first, second]
    }
}

/// SDK configuration for the local stack: the region from [`region`] and dummy static credentials.
pub async fn sdk_config() -> SdkConfig {
    let credentials =
        aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "integration-tests");
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region()))
        .credentials_provider(credentials)
        .load()
        .await
}

/// An S3 client for the local stack (path-style addressing: bucket host names do not resolve locally).
pub async fn s3_client() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk_config().await)
        .endpoint_url(endpoint(Service::S3))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// An SQS client for the local stack.
pub async fn sqs_client() -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(&sdk_config().await)
        .endpoint_url(endpoint(Service::Sqs))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// An SNS client for the local stack.
pub async fn sns_client() -> aws_sdk_sns::Client {
    let config = aws_sdk_sns::config::Builder::from(&sdk_config().await)
        .endpoint_url(endpoint(Service::Sns))
        .build();
    aws_sdk_sns::Client::from_conf(config)
}

/// A DynamoDB client for the local stack.
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .endpoint_url(endpoint(Service::DynamoDb))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// An X-Ray client for the local stack.
pub async fn xray_client() -> aws_sdk_xray::Client {
    let config = aws_sdk_xray::config::Builder::from(&sdk_config().await)
        .endpoint_url(endpoint(Service::Xray))
        .build();
    aws_sdk_xray::Client::from_conf(config)
}

/// A DynamoDB client for the local stack, traced by tracekit (what the functions build).
pub async fn traced_dynamodb_client() -> aws_sdk_dynamodb::Client {
    let builder = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .endpoint_url(endpoint(Service::DynamoDb));
    aws_sdk_dynamodb::Client::from_conf(tracekit::aws::traced(builder).build())
}

/// An S3 client for the local stack (path style), traced by tracekit.
pub async fn traced_s3_client() -> aws_sdk_s3::Client {
    let builder = aws_sdk_s3::config::Builder::from(&sdk_config().await)
        .endpoint_url(endpoint(Service::S3))
        .force_path_style(true);
    aws_sdk_s3::Client::from_conf(tracekit::aws::traced(builder).build())
}

/// An SQS client for the local stack, traced by tracekit.
pub async fn traced_sqs_client() -> aws_sdk_sqs::Client {
    let builder = aws_sdk_sqs::config::Builder::from(&sdk_config().await)
        .endpoint_url(endpoint(Service::Sqs));
    aws_sdk_sqs::Client::from_conf(tracekit::aws::traced(builder).build())
}

/// An SNS client for the local stack, traced by tracekit.
pub async fn traced_sns_client() -> aws_sdk_sns::Client {
    let builder = aws_sdk_sns::config::Builder::from(&sdk_config().await)
        .endpoint_url(endpoint(Service::Sns));
    aws_sdk_sns::Client::from_conf(tracekit::aws::traced(builder).build())
}

/// A traced DynamoDB, S3 and SQS client that need no local stack, for tests that make no AWS call
/// (a request would go to a closed port on 127.0.0.1 and fail at once).
pub async fn offline_traced_clients() -> (
    aws_sdk_dynamodb::Client,
    aws_sdk_s3::Client,
    aws_sdk_sqs::Client,
) {
    const NOWHERE: &str = "http://127.0.0.1:9";
    let sdk = sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(NOWHERE);
    let s3 = aws_sdk_s3::config::Builder::from(&sdk)
        .endpoint_url(NOWHERE)
        .force_path_style(true);
    let sqs = aws_sdk_sqs::config::Builder::from(&sdk).endpoint_url(NOWHERE);
    (
        aws_sdk_dynamodb::Client::from_conf(tracekit::aws::traced(dynamodb).build()),
        aws_sdk_s3::Client::from_conf(tracekit::aws::traced(s3).build()),
        aws_sdk_sqs::Client::from_conf(tracekit::aws::traced(sqs).build()),
    )
}

/// A resource name `scripts/devstack env` exports (`ORDERS_TABLE`, `RECEIPTS_BUCKET`, ...).
///
/// # Panics
/// When the variable is not set, with what to run.
pub fn resource(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| panic!("{variable} is not set: {START_STACK}"))
}

/// Creates a queue named `<prefix>-<random>` and returns its URL.
///
/// # Panics
/// When SQS refuses.
pub async fn create_queue(prefix: &str) -> String {
    let created = sqs_client()
        .await
        .create_queue()
        .queue_name(unique_name(prefix))
        .send()
        .await
        .unwrap_or_else(|error| panic!("creating a queue: {error:?}"));
    created
        .queue_url
        .unwrap_or_else(|| panic!("SQS returned no queue URL"))
}

/// The ARN of the queue at `url`.
///
/// # Panics
/// When SQS refuses or answers without one.
pub async fn queue_arn(url: &str) -> String {
    sqs_client()
        .await
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|error| panic!("the attributes of {url}: {error:?}"))
        .attributes
        .and_then(|attributes| {
            attributes
                .get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap_or_else(|| panic!("SQS returned no ARN for {url}"))
}

/// A topic of its own and a queue subscribed to it, made by [`topic_to_queue`].
#[derive(Debug, Clone)]
pub struct TopicSink {
    /// The topic's name, `<prefix>-<random>`.
    pub topic_name: String,
    /// The topic's ARN.
    pub topic_arn: String,
    /// The subscribed queue's URL.
    pub queue_url: String,
    /// The subscription's ARN.
    pub subscription_arn: String,
}

/// Creates a topic `<prefix>-<random>` and a queue subscribed to it. `raw`: raw message delivery
/// (the message's attributes become the queue message's own); otherwise the queue receives the SNS
/// envelope as its body, `MessageAttributes` included, as SNS delivers it to Lambda.
///
/// # Panics
/// When SNS or SQS refuses.
pub async fn topic_to_queue(prefix: &str, raw: bool) -> TopicSink {
    let sns = sns_client().await;
    let topic_name = unique_name(prefix);
    let topic_arn = sns
        .create_topic()
        .name(&topic_name)
        .send()
        .await
        .unwrap_or_else(|error| panic!("creating a topic: {error:?}"))
        .topic_arn
        .unwrap_or_else(|| panic!("SNS returned no topic ARN"));
    let queue_url = create_queue(&format!("{prefix}-sink")).await;
    let subscription_arn = sns
        .subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn(&queue_url).await)
        .attributes("RawMessageDelivery", raw.to_string())
        .send()
        .await
        .unwrap_or_else(|error| panic!("subscribing a queue: {error:?}"))
        .subscription_arn
        .unwrap_or_default();
    TopicSink {
        topic_name,
        topic_arn,
        queue_url,
        subscription_arn,
    }
}

/// The Lambda SNS event record for one notification: `envelope` as SNS delivers it (the body an
/// SQS subscriber without raw delivery receives), under the subscription `subscription_arn`.
pub fn sns_record(envelope: serde_json::Value, subscription_arn: &str) -> serde_json::Value {
    serde_json::json!({
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription_arn,
        "Sns": envelope,
    })
}

/// `<prefix>-<12 random hex digits>`: a name no other test run uses (valid for buckets, queues and
/// tables when `prefix` is lowercase).
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(12))
}

/// Calls `check` every 100 ms until it returns `Some`, and returns that value; after `timeout`, an
/// [`Error::Timeout`] that names `what`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout(format!(
                "timed out after {timeout:?} waiting for {what}"
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The pinned cargo-lambda `scripts/infra-check install` puts in `$TRACEKIT_TOOLS_DIR` (a relative
/// one from the workspace root, as `make` runs the scripts; default `.devstack/tools`).
///
/// # Panics
/// When it is not installed, with the command that installs it.
pub fn cargo_lambda() -> PathBuf {
    let tools = std::env::var_os("TRACEKIT_TOOLS_DIR").map_or_else(
        || workspace_root().join(".devstack/tools"),
        |dir| workspace_root().join(dir),
    );
    let binary = tools.join("infra-sam/bin/cargo-lambda");
    assert!(
        binary.is_file(),
        "{} is missing: run `scripts/infra-check install` (`make test` does)",
        binary.display()
    );
    binary
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The path of the function binary `name` (a workspace package), built with the profile of the running
/// test or benchmark: `<target>/<profile>/<name>`.
///
/// Looked for next to the running executable (so it follows whatever target directory Cargo used), then
/// in `$CARGO_TARGET_DIR` (or `<workspace>/target`).
///
/// # Panics
/// When the binary has not been built, with the command that builds it.
pub fn function_binary(name: &str) -> PathBuf {
    // Tests and benches run from <target>/<profile>/deps/.
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let profile_dir = exe_dir.map(|dir| match dir.parent() {
        Some(parent) if dir.ends_with("deps") => parent.to_path_buf(),
        _ => dir,
    });
    let profile = profile_dir
        .as_deref()
        .and_then(Path::file_name)
        .map_or_else(
            || "debug".to_owned(),
            |name| name.to_string_lossy().into_owned(),
        );
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || workspace_root().join("target"),
        |dir| workspace_root().join(dir),
    );
    let candidates: Vec<PathBuf> = profile_dir
        .into_iter()
        .chain([target_dir.join(&profile)])
        .map(|dir| dir.join(name))
        .collect();
    if let Some(found) = candidates.iter().find(|path| path.is_file()) {
        return found.clone();
    }
    let flag = match profile.as_str() {
        "debug" => String::new(),
        "release" => " --release".to_owned(),
        other => format!(" --profile {other}"),
    };
    panic!(
        "function binary {name} not found (looked at {candidates:?}): build it with `cargo build --workspace --bins{flag}` (`make test` does)"
    );
}
