//! Application Signals (`OTEL_AWS_APPLICATION_SIGNALS_ENABLED`): the `aws.local.*` and
//! `aws.remote.*` attributes CloudWatch Application Signals builds its service map and metrics from,
//! and the sampler that records unsampled invocations so they can be counted.
//!
//! The attributes are derived at export, as AWS's Python distribution derives them in Lambda
//! (aws-opentelemetry-distro 0.21.0: `_aws_metric_attribute_generator.py`,
//! `_aws_span_processing_util.py`, `attribute_propagating_span_processor.py`), for the spans
//! tracekit makes:
//! - a local root or SERVER span (the invocation) gets the service attributes: `aws.local.service`,
//!   `aws.local.operation` = `<function>/FunctionHandler`, `aws.span.kind` (`LOCAL_ROOT` for a
//!   local root);
//! - CLIENT, PRODUCER and CONSUMER spans get the dependency attributes: the local ones, plus
//!   `aws.remote.service` (`AWS::DynamoDB`, `AWS::S3`, `AWS::SQS`, … for AWS SDK calls; the messaging
//!   system otherwise; `host:port` for an HTTP call beyond AWS), `aws.remote.operation` (the SDK
//!   operation; the method and the path's first segment for HTTP), and the remote resource (one
//!   DynamoDB table, an S3 bucket, an SQS queue or an SNS topic with its account and region);
//! - other spans get `aws.local.operation`, which the distro copies from parent to child.
//!
//! Every span carries `aws.trace.flag.sampled`. `aws.local.environment` is the environment
//! Application Signals files the service under: `deployment.environment.name` (or the older
//! `deployment.environment`) from the resource, else `lambda:default` — the rule of the distro's
//! EMF dimension, and the value its 2026 Lambda lite SDK writes on spans.

use opentelemetry::{
    Context, KeyValue, Value,
    trace::{Link, SpanKind, TraceId},
};
use opentelemetry_sdk::{
    Resource,
    trace::{SamplingDecision, SamplingResult, ShouldSample, SpanData},
};
use opentelemetry_semantic_conventions::attribute as semattr;

/// Application Signals' attribute names and values, which the semantic conventions do not define.
/// From aws-opentelemetry-distro's `_aws_attribute_keys.py` and `_aws_span_processing_util.py`.
mod attr {
    pub(super) const AWS_LOCAL_SERVICE: &str = "aws.local.service";
    pub(super) const AWS_LOCAL_OPERATION: &str = "aws.local.operation";
    pub(super) const AWS_LOCAL_ENVIRONMENT: &str = "aws.local.environment";
    pub(super) const AWS_REMOTE_SERVICE: &str = "aws.remote.service";
    pub(super) const AWS_REMOTE_OPERATION: &str = "aws.remote.operation";
    pub(super) const AWS_REMOTE_RESOURCE_TYPE: &str = "aws.remote.resource.type";
    pub(super) const AWS_REMOTE_RESOURCE_IDENTIFIER: &str = "aws.remote.resource.identifier";
    pub(super) const AWS_CLOUDFORMATION_PRIMARY_IDENTIFIER: &str =
        "aws.remote.resource.cfn.primary.identifier";
    pub(super) const AWS_REMOTE_RESOURCE_ACCOUNT_ID: &str = "aws.remote.resource.account.id";
    pub(super) const AWS_REMOTE_RESOURCE_REGION: &str = "aws.remote.resource.region";
    pub(super) const AWS_SPAN_KIND: &str = "aws.span.kind";
    pub(super) const AWS_TRACE_FLAG_SAMPLED: &str = "aws.trace.flag.sampled";

    // Older semantic-convention names the distro still reads (tracekit writes both `rpc.*` names).
    pub(super) const RPC_SYSTEM: &str = "rpc.system";
    pub(super) const RPC_SERVICE: &str = "rpc.service";
    pub(super) const MESSAGING_OPERATION: &str = "messaging.operation";
    pub(super) const DEPLOYMENT_ENVIRONMENT: &str = "deployment.environment";

    pub(super) const AWS_API: &str = "aws-api";
    pub(super) const LOCAL_ROOT: &str = "LOCAL_ROOT";
    pub(super) const UNKNOWN_SERVICE: &str = "UnknownService";
    pub(super) const INTERNAL_OPERATION: &str = "InternalOperation";
    pub(super) const UNKNOWN_REMOTE_SERVICE: &str = "UnknownRemoteService";
    pub(super) const UNKNOWN_REMOTE_OPERATION: &str = "UnknownRemoteOperation";
    pub(super) const DEFAULT_ENVIRONMENT: &str = "lambda:default";
    pub(super) const FUNCTION_HANDLER: &str = "/FunctionHandler";
    pub(super) const DYNAMODB_TABLE: &str = "AWS::DynamoDB::Table";
    pub(super) const S3_BUCKET: &str = "AWS::S3::Bucket";
    pub(super) const SQS_QUEUE: &str = "AWS::SQS::Queue";
    pub(super) const SNS_TOPIC: &str = "AWS::SNS::Topic";

    /// Every key this module writes; a span's own value of one is replaced, as the distro does.
    pub(super) const GENERATED: [&str; 12] = [
        AWS_LOCAL_SERVICE,
        AWS_LOCAL_OPERATION,
        AWS_LOCAL_ENVIRONMENT,
        AWS_REMOTE_SERVICE,
        AWS_REMOTE_OPERATION,
        AWS_REMOTE_RESOURCE_TYPE,
        AWS_REMOTE_RESOURCE_IDENTIFIER,
        AWS_CLOUDFORMATION_PRIMARY_IDENTIFIER,
        AWS_REMOTE_RESOURCE_ACCOUNT_ID,
        AWS_REMOTE_RESOURCE_REGION,
        AWS_SPAN_KIND,
        AWS_TRACE_FLAG_SAMPLED,
    ];
}

/// Service names the distro maps rather than prefixing with `AWS::`
/// (`_AWS_SDK_SERVICE_MAPPING`).
const SERVICE_MAPPING: [(&str, &str); 6] = [
    ("Secrets Manager", "AWS::SecretsManager"),
    ("SNS", "AWS::SNS"),
    ("SFN", "AWS::StepFunctions"),
    ("Bedrock Runtime", "AWS::BedrockRuntime"),
    ("Bedrock Agent", "AWS::Bedrock"),
    ("Bedrock Agent Runtime", "AWS::Bedrock"),
];

/// Whether unsampled spans are recorded and exported: Application Signals on the agent path, where
/// they go as `T1U` (AWS's distros send them nowhere else either).
pub(crate) fn records_unsampled(config: &crate::Config) -> bool {
    config.application_signals
        && matches!(
            config.exporter,
            crate::config::ExporterConfig::OtlpUdp { .. }
        )
}

/// Derives the Application Signals attributes of exported spans. Built once, at init.
#[derive(Debug, Clone)]
pub(crate) struct AppSignals {
    service: String,
    operation: String,
    environment: String,
}

impl AppSignals {
    /// From the resource: `service.name`, `faas.name` (the function) and the deployment environment.
    pub(crate) fn new(resource: &Resource) -> Self {
        let get = |key: &'static str| {
            resource
                .get(&opentelemetry::Key::from_static_str(key))
                .map(|value| value.as_str().into_owned())
                .filter(|value| !value.is_empty())
        };
        let service = get(semattr::SERVICE_NAME)
            .filter(|name| !name.starts_with("unknown_service"))
            .unwrap_or_else(|| attr::UNKNOWN_SERVICE.to_owned());
        let function = get(semattr::FAAS_NAME).unwrap_or_else(|| service.clone());
        let environment = get(semattr::DEPLOYMENT_ENVIRONMENT_NAME)
            .or_else(|| get(attr::DEPLOYMENT_ENVIRONMENT))
            .unwrap_or_else(|| attr::DEFAULT_ENVIRONMENT.to_owned());
        AppSignals {
            service,
            operation: format!("{function}{}", attr::FUNCTION_HANDLER),
            environment,
        }
    }

    /// Adds the attributes `span` gets, replacing any of the same name.
    pub(crate) fn annotate(&self, span: &mut SpanData) {
        self.annotate_parts(
            &span.span_kind,
            span.parent_span_id,
            span.parent_span_is_remote,
            span.span_context.is_sampled(),
            &mut span.attributes,
        );
    }

    /// [`AppSignals::annotate`], for a span kept as its parts.
    pub(crate) fn annotate_parts(
        &self,
        kind: &SpanKind,
        parent_span_id: opentelemetry::trace::SpanId,
        parent_span_is_remote: bool,
        sampled: bool,
        attributes: &mut Vec<KeyValue>,
    ) {
        let local_root =
            parent_span_id == opentelemetry::trace::SpanId::INVALID || parent_span_is_remote;
        let dependency = matches!(
            kind,
            SpanKind::Client | SpanKind::Producer | SpanKind::Consumer
        );
        let service = local_root || *kind == SpanKind::Server;
        let mut added: Vec<KeyValue> = Vec::with_capacity(12);
        if dependency {
            let operation = if local_root && *kind != SpanKind::Server {
                attr::INTERNAL_OPERATION
            } else {
                self.operation.as_str()
            };
            self.local(&mut added, operation);
            remote(attributes, &mut added);
        } else if service {
            self.local(&mut added, &self.operation);
        } else {
            added.push(KeyValue::new(
                attr::AWS_LOCAL_OPERATION,
                self.operation.clone(),
            ));
        }
        if dependency || service {
            let kind = if local_root {
                attr::LOCAL_ROOT
            } else {
                kind_name(kind)
            };
            added.push(KeyValue::new(attr::AWS_SPAN_KIND, kind));
        }
        added.push(KeyValue::new(attr::AWS_TRACE_FLAG_SAMPLED, sampled));
        attributes.retain(|kv| !attr::GENERATED.contains(&kv.key.as_str()));
        attributes.extend(added);
    }

    fn local(&self, added: &mut Vec<KeyValue>, operation: &str) {
        added.push(KeyValue::new(attr::AWS_LOCAL_SERVICE, self.service.clone()));
        added.push(KeyValue::new(
            attr::AWS_LOCAL_OPERATION,
            operation.to_owned(),
        ));
        added.push(KeyValue::new(
            attr::AWS_LOCAL_ENVIRONMENT,
            self.environment.clone(),
        ));
    }
}

fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "CLIENT",
        SpanKind::Server => "SERVER",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal => "INTERNAL",
    }
}

fn string<'a>(attributes: &'a [KeyValue], key: &str) -> Option<std::borrow::Cow<'a, str>> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .and_then(|kv| match &kv.value {
            Value::String(_) => Some(kv.value.as_str()),
            _ => None,
        })
}

/// `aws.remote.*` of a dependency span, as the distro's `_set_remote_service_and_operation` and
/// `_set_remote_type_and_identifier` derive them for AWS SDK and messaging spans.
fn remote(attributes: &[KeyValue], added: &mut Vec<KeyValue>) {
    let aws_sdk = string(attributes, attr::RPC_SYSTEM).as_deref() == Some(attr::AWS_API);
    let (service, operation) = if let Some(service) = string(attributes, attr::RPC_SERVICE) {
        let service = if aws_sdk {
            SERVICE_MAPPING
                .iter()
                .find(|(name, _)| *name == service)
                .map_or_else(
                    || format!("AWS::{service}"),
                    |(_, mapped)| (*mapped).to_owned(),
                )
        } else {
            service.into_owned()
        };
        let operation = string(attributes, semattr::RPC_METHOD).map_or_else(
            || attr::UNKNOWN_REMOTE_OPERATION.to_owned(),
            |m| m.into_owned(),
        );
        (service, operation)
    } else if let Some(system) = string(attributes, semattr::MESSAGING_SYSTEM) {
        // The distro reads the older `messaging.operation`; tracekit writes the current name.
        let operation = string(attributes, attr::MESSAGING_OPERATION)
            .or_else(|| string(attributes, semattr::MESSAGING_OPERATION_NAME))
            .map_or_else(
                || attr::UNKNOWN_REMOTE_OPERATION.to_owned(),
                |o| o.into_owned(),
            );
        (system.into_owned(), operation)
    } else if let Some(address) = string(attributes, semattr::SERVER_ADDRESS) {
        http_remote(attributes, &address)
    } else {
        (
            attr::UNKNOWN_REMOTE_SERVICE.to_owned(),
            attr::UNKNOWN_REMOTE_OPERATION.to_owned(),
        )
    };
    added.push(KeyValue::new(attr::AWS_REMOTE_SERVICE, service));
    added.push(KeyValue::new(attr::AWS_REMOTE_OPERATION, operation));
    if aws_sdk {
        remote_resource(attributes, added);
    }
}

/// `aws.remote.service` and `aws.remote.operation` of an HTTP call beyond AWS, as the distro's
/// `_generate_remote_service` and `_generate_remote_operation` derive them: `host:port`, and the
/// method with the path's first segment (`POST /authorizations`), so that a path's ids do not make
/// an operation each.
fn http_remote(attributes: &[KeyValue], address: &str) -> (String, String) {
    let port = attributes
        .iter()
        .find(|kv| kv.key.as_str() == semattr::SERVER_PORT)
        .and_then(|kv| match kv.value {
            Value::I64(port) => Some(port),
            _ => None,
        });
    let service = match port {
        Some(port) => format!("{address}:{port}"),
        None => address.to_owned(),
    };
    let path = string(attributes, semattr::URL_FULL).map(|url| first_segment(&url).to_owned());
    let method = string(attributes, semattr::HTTP_REQUEST_METHOD);
    let operation = match (method, path) {
        (Some(method), Some(path)) => format!("{method} {path}"),
        (Some(method), None) => method.into_owned(),
        (None, Some(path)) => path,
        (None, None) => attr::UNKNOWN_REMOTE_OPERATION.to_owned(),
    };
    (service, operation)
}

/// `/first` of `scheme://host/first/second?query`; `/` when the path is empty.
fn first_segment(url: &str) -> &str {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |start| &rest[start..]),
        None => url,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    match path.get(1..).and_then(|rest| rest.find('/')) {
        Some(end) => &path[..=end],
        None if path.len() > 1 => path,
        None => "/",
    }
}

/// The remote resource of an AWS SDK span: exactly one DynamoDB table, an S3 bucket, an SQS queue
/// or an SNS topic (`aws.sns.topic.arn`, which `Publish` and `PublishBatch` spans carry).
fn remote_resource(attributes: &[KeyValue], added: &mut Vec<KeyValue>) {
    let tables = attributes
        .iter()
        .find(|kv| kv.key.as_str() == semattr::AWS_DYNAMODB_TABLE_NAMES)
        .and_then(|kv| match &kv.value {
            Value::Array(opentelemetry::Array::String(tables)) if tables.len() == 1 => {
                Some(tables[0].as_str().to_owned())
            }
            _ => None,
        });
    // (type, identifier, CloudFormation identifier, account, region): the account and region only
    // where the resource names them (a queue URL, an ARN), as the distro records them.
    let (kind, identifier, cfn, account, region) = if let Some(table) = tables {
        (
            attr::DYNAMODB_TABLE,
            escape(&table),
            escape(&table),
            None,
            None,
        )
    } else if let Some(bucket) = string(attributes, semattr::AWS_S3_BUCKET) {
        (
            attr::S3_BUCKET,
            escape(&bucket),
            escape(&bucket),
            None,
            None,
        )
    } else if let Some(url) = string(attributes, semattr::AWS_SQS_QUEUE_URL) {
        let Some(queue) = SqsQueue::parse(&url) else {
            return;
        };
        let (name, account, region) = (escape(queue.name), queue.account, queue.region);
        (
            attr::SQS_QUEUE,
            name,
            escape(&url),
            Some(account.to_owned()),
            region.map(str::to_owned),
        )
    } else if let Some(arn) = string(attributes, semattr::AWS_SNS_TOPIC_ARN) {
        // As the distro: the topic's name, the ARN as CloudFormation's identifier, and the account
        // and region the ARN names; an ARN it cannot read names no resource.
        let Some(topic) = Arn::parse(&arn) else {
            return;
        };
        let region = Some(topic.region).filter(|region| !region.is_empty());
        (
            attr::SNS_TOPIC,
            escape(topic.resource),
            escape(&arn),
            Some(topic.account.to_owned()),
            region.map(str::to_owned),
        )
    } else {
        return;
    };
    added.push(KeyValue::new(attr::AWS_REMOTE_RESOURCE_TYPE, kind));
    added.push(KeyValue::new(
        attr::AWS_REMOTE_RESOURCE_IDENTIFIER,
        identifier,
    ));
    added.push(KeyValue::new(
        attr::AWS_CLOUDFORMATION_PRIMARY_IDENTIFIER,
        cfn,
    ));
    if let Some(account) = account {
        added.push(KeyValue::new(attr::AWS_REMOTE_RESOURCE_ACCOUNT_ID, account));
    }
    if let Some(region) = region {
        added.push(KeyValue::new(attr::AWS_REMOTE_RESOURCE_REGION, region));
    }
}

/// `^` and `|` delimit identifiers in Application Signals; the distro escapes them with `^`.
fn escape(identifier: &str) -> String {
    identifier.replace('^', "^^").replace('|', "^|")
}

/// An SQS queue URL's parts, as the distro's `sqs_url_parser.py` reads them:
/// `https://sqs.<region>.amazonaws.com/<account>/<name>`.
#[derive(Debug, PartialEq, Eq)]
struct SqsQueue<'a> {
    account: &'a str,
    name: &'a str,
    /// Only from a host of the form `sqs.<region>.amazonaws.com`.
    region: Option<&'a str>,
}

impl<'a> SqsQueue<'a> {
    fn parse(url: &'a str) -> Option<Self> {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let mut parts = rest.split('/');
        let host = parts.next()?;
        let account = parts.next()?;
        let name = parts.next()?;
        if parts.next().is_some_and(|extra| !extra.is_empty())
            || account.is_empty()
            || !account.bytes().all(|b| b.is_ascii_digit())
            || name.is_empty()
            || name.len() > 80
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return None;
        }
        let labels: Vec<&str> = host.split('.').collect();
        let region = (labels.len() == 4 && labels[0].starts_with("sqs")).then(|| labels[1]);
        Some(SqsQueue {
            account,
            name,
            region,
        })
    }
}

/// A regional resource's ARN, as the distro's `RegionalResourceArnParser` reads one:
/// `arn:<partition>:<service>:<region>:<account>:<resource>`, the account all digits, the resource
/// what follows the last `:`.
#[derive(Debug, PartialEq, Eq)]
struct Arn<'a> {
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

impl<'a> Arn<'a> {
    fn parse(arn: &'a str) -> Option<Self> {
        if !arn.starts_with("arn") {
            return None;
        }
        let parts: Vec<&str> = arn.split(':').collect();
        let account = *parts.get(4)?;
        if parts.len() < 6 || account.is_empty() || !account.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Arn {
            region: parts[3],
            account,
            resource: parts[parts.len() - 1],
        })
    }
}

/// A sampler that records what its inner sampler drops, without sampling it (the distro's
/// `AlwaysRecordSampler`): unsampled invocations still reach the span processor, which sends them
/// to the agent as `T1U`, so Application Signals counts every invocation.
#[derive(Debug, Clone)]
pub(crate) struct AlwaysRecord(pub(crate) Box<dyn ShouldSample>);

impl ShouldSample for AlwaysRecord {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let mut result =
            self.0
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        if result.decision == SamplingDecision::Drop {
            result.decision = SamplingDecision::RecordOnly;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::Sampler;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::time::SystemTime;

    fn signals() -> AppSignals {
        AppSignals::new(
            &Resource::builder_empty()
                .with_service_name("orders-api")
                .with_attribute(KeyValue::new(semattr::FAAS_NAME, "orders-fn"))
                .build(),
        )
    }

    fn span(kind: SpanKind, parent: Option<bool>, attributes: Vec<KeyValue>) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1u128),
                SpanId::from(2u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: if parent.is_some() {
                SpanId::from(3u64)
            } else {
                SpanId::INVALID
            },
            parent_span_is_remote: parent == Some(true),
            span_kind: kind,
            name: "span".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    fn annotated(mut span: SpanData) -> Vec<(String, String)> {
        signals().annotate(&mut span);
        span.attributes
            .iter()
            .filter(|kv| {
                kv.key.as_str().starts_with("aws.local")
                    || kv.key.as_str().starts_with("aws.remote")
                    || kv.key.as_str().starts_with("aws.span")
                    || kv.key.as_str().starts_with("aws.trace")
            })
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn sdk(service: &str, method: &str, extra: Vec<KeyValue>) -> Vec<KeyValue> {
        let mut attributes = vec![
            KeyValue::new(attr::RPC_SYSTEM, "aws-api"),
            KeyValue::new(attr::RPC_SERVICE, service.to_owned()),
            KeyValue::new(semattr::RPC_METHOD, method.to_owned()),
        ];
        attributes.extend(extra);
        attributes
    }

    #[test]
    fn arns_are_read_as_the_distro_reads_them() {
        // (ARN, (region, account, resource), reason)
        let cases = [
            (
                "arn:aws:sns:us-east-1:123456789012:orders",
                Some(("us-east-1", "123456789012", "orders")),
                "a topic",
            ),
            (
                "arn:aws-cn:sns:cn-north-1:123456789012:orders.fifo",
                Some(("cn-north-1", "123456789012", "orders.fifo")),
                "another partition, a FIFO topic",
            ),
            (
                "arn:aws:sns:us-east-1:123456789012:orders:sub-id",
                Some(("us-east-1", "123456789012", "sub-id")),
                "the last field, as the distro takes it",
            ),
            (
                "arn:aws:sns:us-east-1:12345678901a:orders",
                None,
                "an account that is not digits",
            ),
            ("arn:aws:sns:us-east-1::orders", None, "no account"),
            ("arn:aws:sns:us-east-1:123456789012", None, "five fields"),
            ("orders", None, "a name, not an ARN"),
            ("", None, "empty"),
        ];
        for (arn, expected, reason) in cases {
            let parsed = Arn::parse(arn).map(|arn| (arn.region, arn.account, arn.resource));
            assert_eq!(parsed, expected, "{arn}: {reason}");
        }
    }

    #[test]
    fn spans_get_the_attributes_the_distro_gives_them_in_lambda() {
        // (span, expected Application Signals attributes, reason)
        type Expected = &'static [(&'static str, &'static str)];
        let cases: Vec<(SpanData, Expected, &str)> = vec![
            (
                span(SpanKind::Server, Some(true), vec![]),
                &[
                    ("aws.local.service", "orders-api"),
                    ("aws.local.operation", "orders-fn/FunctionHandler"),
                    ("aws.local.environment", "lambda:default"),
                    ("aws.span.kind", "LOCAL_ROOT"),
                    ("aws.trace.flag.sampled", "true"),
                ],
                "the invocation: a local root, named after the handler whatever its route",
            ),
            (
                span(
                    SpanKind::Client,
                    Some(false),
                    sdk(
                        "DynamoDB",
                        "PutItem",
                        vec![KeyValue::new(
                            semattr::AWS_DYNAMODB_TABLE_NAMES,
                            opentelemetry::Value::Array(
                                vec![opentelemetry::StringValue::from("orders")].into(),
                            ),
                        )],
                    ),
                ),
                &[
                    ("aws.local.service", "orders-api"),
                    ("aws.local.operation", "orders-fn/FunctionHandler"),
                    ("aws.local.environment", "lambda:default"),
                    ("aws.remote.service", "AWS::DynamoDB"),
                    ("aws.remote.operation", "PutItem"),
                    ("aws.remote.resource.type", "AWS::DynamoDB::Table"),
                    ("aws.remote.resource.identifier", "orders"),
                    ("aws.remote.resource.cfn.primary.identifier", "orders"),
                    ("aws.span.kind", "CLIENT"),
                    ("aws.trace.flag.sampled", "true"),
                ],
                "an SDK call with one table",
            ),
            (
                span(
                    SpanKind::Client,
                    Some(false),
                    sdk(
                        "S3",
                        "PutObject",
                        vec![KeyValue::new(semattr::AWS_S3_BUCKET, "receipts|2026")],
                    ),
                ),
                &[
                    ("aws.local.service", "orders-api"),
                    ("aws.local.operation", "orders-fn/FunctionHandler"),
                    ("aws.local.environment", "lambda:default"),
                    ("aws.remote.service", "AWS::S3"),
                    ("aws.remote.operation", "PutObject"),
                    ("aws.remote.resource.type", "AWS::S3::Bucket"),
                    ("aws.remote.resource.identifier", "receipts^|2026"),
                    (
                        "aws.remote.resource.cfn.primary.identifier",
                        "receipts^|2026",
                    ),
                    ("aws.span.kind", "CLIENT"),
                    ("aws.trace.flag.sampled", "true"),
                ],
                "an S3 bucket, its delimiter escaped",
            ),
            (
                span(
                    SpanKind::Producer,
                    Some(false),
                    sdk(
                        "SQS",
                        "SendMessage",
                        vec![KeyValue::new(
                            semattr::AWS_SQS_QUEUE_URL,
                            "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
                        )],
                    ),
                ),
                &[
                    ("aws.local.service", "orders-api"),
                    ("aws.local.operation", "orders-fn/FunctionHandler"),
                    ("aws.local.environment", "lambda:default"),
                    ("aws.remote.service", "AWS::SQS"),
                    ("aws.remote.operation", "SendMessage"),
                    ("aws.remote.resource.type", "AWS::SQS::Queue"),
                    ("aws.remote.resource.identifier", "orders"),
                    (
                        "aws.remote.resource.cfn.primary.identifier",
                        "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
                    ),
                    ("aws.remote.resource.account.id", "123456789012"),
                    ("aws.remote.resource.region", "eu-west-1"),
                    ("aws.span.kind", "PRODUCER"),
                    ("aws.trace.flag.sampled", "true"),
                ],
                "an SQS send: the queue, its account and region from the URL",
            ),
            (
                span(
                    SpanKind::Producer,
                    Some(false),
                    sdk(
                        "SNS",
                        "Publish",
                        vec![KeyValue::new(
                            semattr::AWS_SNS_TOPIC_ARN,
                            "arn:aws:sns:eu-west-1:123456789012:orders-processed",
                        )],
                    ),
                ),
                &[
                    ("aws.local.service", "orders-api"),
                    ("aws.local.operation", "orders-fn/FunctionHandler"),
                    ("aws.local.environment", "lambda:default"),
                    ("aws.remote.service", "AWS::SNS"),
                    ("aws.remote.operation", "Publish"),
                    ("aws.remote.resource.type", "AWS::SNS::Topic"),
                    ("aws.remote.resource.identifier", "orders-processed"),
                    (
                        "aws.remote.resource.cfn.primary.identifier",
                        "arn:aws:sns:eu-west-1:123456789012:orders-processed",
                    ),
                    ("aws.remote.resource.account.id", "123456789012"),
                    ("aws.remote.resource.region", "eu-west-1"),
                    ("aws.span.kind", "PRODUCER"),
                    ("aws.trace.flag.sampled", "true"),
                ],
                "an SNS publish: the topic, its account and region from the ARN",
            ),
            (
                span(
                    SpanKind::Producer,
                    Some(false),
                    sdk(
                        "SNS",
                        "Publish",
                        vec![KeyValue::new(
                            semattr::AWS_SNS_TOPIC_ARN,
                            "orders-processed",
                        )],
                    ),
                ),
                &[
                    ("aws.local.service", "orders-api"),
                    ("aws.local.operation", "orders-fn/FunctionHandler"),
                    ("aws.local.environment", "lambda:default"),
                    ("aws.remote.service", "AWS::SNS"),
                    ("aws.remote.operation", "Publish"),
                    ("aws.span.kind", "PRODUCER"),
                    ("aws.trace.flag.sampled", "true"),
                ],
                "a topic ARN the distro cannot read names no resource",
            ),
            (
                span(
                    SpanKind::Consumer,
                    Some(false),
                    vec![
                        KeyValue::new(semattr::MESSAGING_SYSTEM, "aws_sqs"),
                        KeyValue::new(semattr::MESSAGING_OPERATION_NAME, "process"),
                    ],
                ),
                &[
                    ("aws.local.service", "orders-api"),
                    ("aws.local.operation", "orders-fn/FunctionHandler"),
                    ("aws.local.environment", "lambda:default"),
                    ("aws.remote.service", "aws_sqs"),
                    ("aws.remote.operation", "process"),
                    ("aws.span.kind", "CONSUMER"),
                    ("aws.trace.flag.sampled", "true"),
                ],
                "a process span under the invocation: the messaging system, no resource",
            ),
            (
                span(
                    SpanKind::Consumer,
                    Some(true),
                    vec![KeyValue::new(semattr::MESSAGING_SYSTEM, "aws_sqs")],
                ),
                &[
                    ("aws.local.service", "orders-api"),
                    ("aws.local.operation", "InternalOperation"),
                    ("aws.local.environment", "lambda:default"),
                    ("aws.remote.service", "aws_sqs"),
                    ("aws.remote.operation", "UnknownRemoteOperation"),
                    ("aws.span.kind", "LOCAL_ROOT"),
                    ("aws.trace.flag.sampled", "true"),
                ],
                "a process span continuing its producer: a local root that is not SERVER",
            ),
            (
                span(
                    SpanKind::Client,
                    Some(false),
                    vec![
                        KeyValue::new(semattr::HTTP_REQUEST_METHOD, "POST"),
                        KeyValue::new(semattr::SERVER_ADDRESS, "payments.example.com"),
                        KeyValue::new(semattr::SERVER_PORT, 443),
                        KeyValue::new(
                            semattr::URL_FULL,
                            "https://payments.example.com/authorizations/42?card=REDACTED",
                        ),
                    ],
                ),
                &[
                    ("aws.local.service", "orders-api"),
                    ("aws.local.operation", "orders-fn/FunctionHandler"),
                    ("aws.local.environment", "lambda:default"),
                    ("aws.remote.service", "payments.example.com:443"),
                    ("aws.remote.operation", "POST /authorizations"),
                    ("aws.span.kind", "CLIENT"),
                    ("aws.trace.flag.sampled", "true"),
                ],
                "an HTTP call beyond AWS: host and port, the method and the path's first segment",
            ),
            (
                span(SpanKind::Internal, Some(false), vec![]),
                &[
                    ("aws.local.operation", "orders-fn/FunctionHandler"),
                    ("aws.trace.flag.sampled", "true"),
                ],
                "a child span: the operation its parent passes down",
            ),
        ];
        for (span, expected, reason) in cases {
            assert_eq!(annotated(span), pairs(expected), "{reason}");
        }
    }

    #[test]
    fn generated_keys_replace_the_spans_own() {
        let mut span = span(
            SpanKind::Server,
            None,
            vec![
                KeyValue::new("aws.local.service", "mine"),
                KeyValue::new("user.key", "kept"),
            ],
        );
        signals().annotate(&mut span);
        let services: Vec<String> = span
            .attributes
            .iter()
            .filter(|kv| kv.key.as_str() == "aws.local.service")
            .map(|kv| kv.value.to_string())
            .collect();
        assert_eq!(services, ["orders-api"]);
        assert!(
            span.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "user.key")
        );
    }

    #[test]
    fn environment_and_service_come_from_the_resource() {
        let signals = AppSignals::new(
            &Resource::builder_empty()
                .with_attribute(KeyValue::new(semattr::DEPLOYMENT_ENVIRONMENT_NAME, "prod"))
                .build(),
        );
        let mut span = span(SpanKind::Server, None, vec![]);
        signals.annotate(&mut span);
        let get = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(get("aws.local.environment").as_deref(), Some("prod"));
        assert_eq!(
            get("aws.local.service").as_deref(),
            Some("UnknownService"),
            "the SDK's unknown_service default reads as the distro's UnknownService"
        );
    }

    #[test]
    fn an_http_operation_is_named_by_the_paths_first_segment() {
        let cases = [
            ("https://h/authorizations/42?x=REDACTED", "/authorizations"),
            ("https://h/charges", "/charges"),
            ("https://h:8443/", "/"),
            ("https://h", "/"),
            ("https://h?x=1", "/"),
            ("/relative/path", "/relative"),
            ("https://h/a#frag", "/a"),
        ];
        for (url, expected) in cases {
            assert_eq!(first_segment(url), expected, "{url}");
        }
    }

    #[test]
    fn sqs_urls_are_read_as_the_distro_reads_them() {
        let cases = [
            (
                "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
                Some(("123456789012", "orders", Some("us-east-1"))),
                "a regional endpoint",
            ),
            (
                "http://127.0.0.1:4566/000000000000/flow-orders",
                Some(("000000000000", "flow-orders", None)),
                "LocalStack: no region in the host",
            ),
            (
                "https://sqs.us-east-1.amazonaws.com/123/orders/extra",
                None,
                "a path too long",
            ),
            (
                "https://sqs.us-east-1.amazonaws.com/abc/orders",
                None,
                "an account that is not digits",
            ),
            (
                "https://sqs.us-east-1.amazonaws.com/123/or.ders",
                None,
                "a name with a dot",
            ),
            ("not a url", None, "no path"),
        ];
        for (url, expected, reason) in cases {
            let parsed = SqsQueue::parse(url).map(|q| (q.account, q.name, q.region));
            assert_eq!(parsed, expected, "{reason}: {url}");
        }
    }

    #[test]
    fn always_record_keeps_the_decision_but_records_what_is_dropped() {
        let sampler = AlwaysRecord(Box::new(Sampler::AlwaysOff));
        let result =
            sampler.should_sample(None, TraceId::from(1u128), "x", &SpanKind::Server, &[], &[]);
        assert_eq!(result.decision, SamplingDecision::RecordOnly);
        let sampler = AlwaysRecord(Box::new(Sampler::AlwaysOn));
        let result =
            sampler.should_sample(None, TraceId::from(1u128), "x", &SpanKind::Server, &[], &[]);
        assert_eq!(result.decision, SamplingDecision::RecordAndSample);
    }
}
