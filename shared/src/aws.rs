//! Every AWS SDK call traced: one interceptor, added to each client's config.
//!
//! [`TracingInterceptor`] opens one span per operation (`Service.Operation`, kind CLIENT; SQS sends
//! are PRODUCER), child of the current span, with the `rpc.*`, `aws.*`, DynamoDB, S3 and SQS
//! attributes, the attempt count and an event per retried attempt, and the modeled error code as
//! `error.type`. It sets `X-Amzn-Trace-Id` on every request from the client span, after the SDK's own
//! recursion-detection interceptor (which fills it from the Lambda environment) so AWS services link
//! their nodes to tracekit's span; the header is excluded from SigV4 signing. On SQS
//! `SendMessage`/`SendMessageBatch` it sets the `AWSTraceHeader` system attribute and, while a message
//! keeps at most ten attributes, W3C `traceparent`/`tracestate`/`baggage` message attributes: a user's
//! attribute is never dropped or overwritten, and tracing never fails a send. With their features it
//! does the same for SNS `Publish`/`PublishBatch` (message attributes, `aws/sns`), EventBridge
//! `PutEvents` (each entry's `TraceHeader`, `aws/eventbridge`), Step Functions
//! `StartExecution`/`StartSyncExecution` (`traceHeader`, `aws/sfn`) and Lambda `Invoke`
//! (`ClientContext.custom`, `aws/lambda_invoke`).
//!
//! The SDK cannot hold an interceptor in `SdkConfig`, so it is added per client:
//!
//! ```no_run
//! # #[cfg(all(feature = "sqs", feature = "dynamodb", feature = "s3"))]
//! # async fn example() {
//! let sdk = aws_config::load_from_env().await;
//! let sqs = tracekit::aws::sqs_client(&sdk);
//! let table = tracekit::aws::dynamodb_client(&sdk);
//! let bucket = aws_sdk_s3::Client::from_conf(
//!     tracekit::aws::traced(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true)).build(),
//! );
//! # }
//! ```
//!
//! No payload is recorded: no item values, object bodies or message bodies.

use crate::OpenTelemetrySpanExt;
use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::context::Error,
        interceptors::{
            Intercept,
            context::{
                BeforeSerializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
                BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
            },
        },
        orchestrator::{Metadata, OrchestratorError},
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use opentelemetry::{KeyValue, trace::TraceContextExt};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU32, Ordering},
};
use tracing::Span;

/// Attribute keys. [AWS SDK conventions](https://opentelemetry.io/docs/specs/semconv/cloud-providers/aws-sdk/),
/// [DynamoDB](https://opentelemetry.io/docs/specs/semconv/database/dynamodb/),
/// [SQS](https://opentelemetry.io/docs/specs/semconv/messaging/sqs/).
// Each service's keys are used only with its feature on.
#[cfg_attr(
    not(all(
        feature = "dynamodb",
        feature = "s3",
        feature = "sqs",
        feature = "sns",
        feature = "eventbridge",
        feature = "sfn",
        feature = "lambda-invoke"
    )),
    allow(dead_code, unused_imports)
)]
mod attr {
    pub(super) use opentelemetry_semantic_conventions::attribute::RPC_METHOD;
    // Deprecated upstream (`rpc.system.name` and a qualified `rpc.method` replace them), still
    // what X-Ray's translators key on: emitted beside the new names.
    pub(super) const RPC_SERVICE: &str = "rpc.service";
    pub(super) const RPC_SYSTEM: &str = "rpc.system";
    pub(super) use opentelemetry_semantic_conventions::attribute::RPC_SYSTEM_NAME;
    pub(super) const AWS_API: &str = "aws-api";
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_EXTENDED_REQUEST_ID;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_REQUEST_ID;
    pub(super) use opentelemetry_semantic_conventions::attribute::CLOUD_REGION;
    pub(super) use opentelemetry_semantic_conventions::attribute::HTTP_RESPONSE_STATUS_CODE;
    pub(super) use opentelemetry_semantic_conventions::attribute::SERVER_ADDRESS;
    pub(super) const ATTEMPTS: &str = "aws.attempts";
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_DYNAMODB_CONSISTENT_READ as DYNAMODB_CONSISTENT_READ;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_DYNAMODB_CONSUMED_CAPACITY as DYNAMODB_CONSUMED_CAPACITY;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_DYNAMODB_COUNT as DYNAMODB_COUNT;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_DYNAMODB_INDEX_NAME as DYNAMODB_INDEX_NAME;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_DYNAMODB_LIMIT as DYNAMODB_LIMIT;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_DYNAMODB_PROJECTION as DYNAMODB_PROJECTION;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_DYNAMODB_SCANNED_COUNT as DYNAMODB_SCANNED_COUNT;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_DYNAMODB_TABLE_NAMES as DYNAMODB_TABLE_NAMES;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_S3_BUCKET as S3_BUCKET;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_S3_KEY as S3_KEY;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_SNS_TOPIC_ARN as SNS_TOPIC_ARN;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_SQS_QUEUE_URL as SQS_QUEUE_URL;
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_STEP_FUNCTIONS_STATE_MACHINE_ARN as STEP_FUNCTIONS_STATE_MACHINE_ARN;
    pub(super) use opentelemetry_semantic_conventions::attribute::DB_SYSTEM_NAME;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_BATCH_MESSAGE_COUNT;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_DESTINATION_NAME;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_MESSAGE_ID;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_OPERATION_NAME;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_OPERATION_TYPE;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_SYSTEM;
    pub(super) use opentelemetry_semantic_conventions::attribute::{
        FAAS_INVOKED_NAME, FAAS_INVOKED_PROVIDER, FAAS_INVOKED_REGION,
    };
    /// The name older X-Ray translators read.
    pub(super) const SQS_QUEUE_URL_LEGACY: &str = "aws.queue_url";
}

/// The SQS message system attribute X-Ray reads; it does not count against the ten-attribute limit.
/// [SQS and X-Ray](https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html)
pub const AWS_TRACE_HEADER: &str = "AWSTraceHeader";
/// Real SQS rejects a message with more message attributes than this.
/// [SQS quotas](https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html)
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// W3C keys injected into message attributes and client contexts, in order of importance.
#[cfg(any(feature = "sqs", feature = "sns", feature = "lambda-invoke"))]
const W3C_KEYS: [&str; 3] = ["traceparent", "tracestate", "baggage"];

/// The interceptor. Add it to a client config with [`traced`], or use [`dynamodb_client`],
/// [`s3_client`] or [`sqs_client`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TracingInterceptor;

/// The operation's span and what the later hooks learn, kept in the operation's config bag.
#[derive(Debug, Clone)]
struct OperationSpan(Arc<OperationState>);

#[derive(Debug)]
struct OperationState {
    span: Span,
    /// `X-Amzn-Trace-Id` naming the span, written once for every attempt.
    xray_header: Option<String>,
    attempts: AtomicU32,
    last_attempt: Mutex<Option<String>>,
}

impl Storable for OperationSpan {
    type Storer = StoreReplace<Self>;
}

impl Intercept for TracingInterceptor {
    fn name(&self) -> &'static str {
        "tracekit::aws::TracingInterceptor"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Off: no span, no header; the later hooks find no operation span and do nothing.
        if crate::telemetry::disabled() {
            return Ok(());
        }
        let (service, operation) = match cfg.load::<Metadata>() {
            Some(metadata) => (metadata.service().to_owned(), metadata.name().to_owned()),
            None => return Ok(()),
        };
        let producer = match service.as_str() {
            "SQS" => matches!(operation.as_str(), "SendMessage" | "SendMessageBatch"),
            #[cfg(feature = "sns")]
            "SNS" => sns::is_send(&operation),
            #[cfg(feature = "eventbridge")]
            "EventBridge" => eventbridge::is_send(&operation),
            _ => false,
        };
        let span = tracing::info_span!(
            target: "tracekit::aws",
            "aws_sdk",
            otel.name = format!("{service}.{operation}"),
            otel.kind = if producer { "producer" } else { "client" },
            { attr::RPC_SYSTEM } = attr::AWS_API,
            { attr::RPC_SYSTEM_NAME } = attr::AWS_API,
            { attr::RPC_SERVICE } = service.as_str(),
            { attr::RPC_METHOD } = operation.as_str(),
        );
        if let Some(region) = cfg.load::<aws_types::region::Region>() {
            span.set_attribute(attr::CLOUD_REGION, region.to_string());
        }
        let cx = span.context();
        let xray_header = crate::propagation::xray_header_value(cx.span().span_context());
        let input = context.input_mut();
        match service.as_str() {
            #[cfg(feature = "dynamodb")]
            "DynamoDB" => dynamodb::record_input(&span, input),
            #[cfg(feature = "s3")]
            "S3" => s3::record_input(&span, input),
            #[cfg(feature = "sqs")]
            "SQS" => sqs::record_and_inject(&span, &cx, xray_header.as_deref(), input),
            #[cfg(feature = "sns")]
            "SNS" => sns::record_and_inject(&span, &cx, input),
            #[cfg(feature = "eventbridge")]
            "EventBridge" => eventbridge::record_and_inject(&span, xray_header.as_deref(), input),
            #[cfg(feature = "sfn")]
            "SFN" => sfn::record_and_inject(&span, xray_header.as_deref(), input),
            #[cfg(feature = "lambda-invoke")]
            "Lambda" => lambda_invoke::record_and_inject(&span, &cx, input),
            _ => {}
        }
        let _ = input; // unused when no service feature is on
        cfg.interceptor_state()
            .store_put(OperationSpan(Arc::new(OperationState {
                span,
                xray_header,
                attempts: AtomicU32::new(0),
                last_attempt: Mutex::new(None),
            })));
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(OperationSpan(state)) = cfg.load::<OperationSpan>() {
            let attempt = state.attempts.fetch_add(1, Ordering::Relaxed) + 1;
            if attempt > 1 {
                let previous = lock(&state.last_attempt).take().unwrap_or_default();
                state.span.add_event(
                    "retry",
                    vec![
                        KeyValue::new("aws.attempt", i64::from(attempt)),
                        KeyValue::new("aws.retry.reason", previous),
                    ],
                );
            }
        }
        Ok(())
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(OperationSpan(state)) = cfg.load::<OperationSpan>() else {
            return Ok(());
        };
        let request = context.request_mut();
        if let Some(host) = http::Uri::try_from(request.uri())
            .ok()
            .and_then(|uri| uri.host().map(str::to_owned))
        {
            state.span.set_attribute(attr::SERVER_ADDRESS, host);
        }
        // Overwrite: the SDK's recursion detection runs first and fills it from the Lambda segment.
        if let Some(header) = &state.xray_header {
            request
                .headers_mut()
                .insert(crate::propagation::XRAY_TRACE_HEADER, header.clone());
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(OperationSpan(state)) = cfg.load::<OperationSpan>() {
            let outcome = match (context.response(), context.output_or_error()) {
                (_, Some(Err(error))) => error_code(&error_message(error)).to_owned(),
                (Some(response), _) => format!("HTTP {}", response.status().as_u16()),
                _ => String::new(),
            };
            *lock(&state.last_attempt) = Some(outcome);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(OperationSpan(state)) = cfg.load::<OperationSpan>().cloned() else {
            return Ok(());
        };
        cfg.interceptor_state().unset::<OperationSpan>();
        let span = &state.span;
        span.set_attribute(
            attr::ATTEMPTS,
            i64::from(state.attempts.load(Ordering::Relaxed)),
        );
        if let Some(response) = context.response() {
            span.set_attribute(
                attr::HTTP_RESPONSE_STATUS_CODE,
                i64::from(response.status().as_u16()),
            );
            let headers = response.headers();
            if let Some(id) = headers
                .get("x-amzn-requestid")
                .or_else(|| headers.get("x-amz-request-id"))
            {
                span.set_attribute(attr::AWS_REQUEST_ID, id.to_owned());
            }
            if let Some(id) = headers.get("x-amz-id-2") {
                span.set_attribute(attr::AWS_EXTENDED_REQUEST_ID, id.to_owned());
            }
        }
        match context.output_or_error() {
            Some(Ok(output)) => {
                #[cfg(feature = "dynamodb")]
                dynamodb::record_output(span, output);
                #[cfg(feature = "sqs")]
                sqs::record_output(span, output);
                #[cfg(feature = "sns")]
                sns::record_output(span, output);
                let _ = output; // unused when no service feature is on
            }
            Some(Err(error)) => {
                let message = error_message(error);
                crate::error::record(span, error_code(&message), &message);
            }
            None => {}
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The modeled error's display (`Code: message`, `Code` or `unhandled error (Code)`), or the
/// orchestrator's description of a failure that never reached the service.
fn error_message(error: &OrchestratorError<Error>) -> String {
    match error.as_operation_error() {
        Some(operation) => operation.to_string(),
        None => error.to_string(),
    }
}

/// The error code in an [`error_message`]: what precedes the first `:`, or what
/// `unhandled error (...)` wraps.
fn error_code(message: &str) -> &str {
    if let Some(rest) = message.strip_prefix("unhandled error (") {
        return rest.trim_end_matches(')');
    }
    message.split(':').next().unwrap_or(message).trim()
}

/// Adds each `(key, value)` of `pairs` to `attributes` as `make` builds it, only if the key is free,
/// the map keeps at most [`MAX_MESSAGE_ATTRIBUTES`] and the value holds only characters SQS and SNS
/// accept. Returns how many were added. Never removes or replaces anything.
#[cfg(any(feature = "sqs", feature = "sns"))]
fn inject_attributes<V>(
    attributes: &mut std::collections::HashMap<String, V>,
    pairs: impl IntoIterator<Item = (&'static str, String)>,
    make: impl Fn(String) -> Option<V>,
) -> usize {
    let mut added = 0;
    for (key, value) in pairs {
        if attributes.len() >= MAX_MESSAGE_ATTRIBUTES || attributes.contains_key(key) {
            continue;
        }
        // Baggage read from an incoming request may hold characters the service refuses, which
        // would fail the user's send: such a value does not travel.
        if !value.chars().all(attribute_allows) {
            tracing::debug!(
                key,
                "a propagation value has characters the service refuses; not sent"
            );
            continue;
        }
        let Some(attribute) = make(value) else {
            continue;
        };
        attributes.insert(key.to_owned(), attribute);
        added += 1;
    }
    added
}

/// The characters SQS (and SNS, which delivers to it) accepts in a message attribute value: `#x9 |
/// #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`.
/// [SendMessage](https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html)
#[cfg(any(feature = "sqs", feature = "sns"))]
fn attribute_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(any(feature = "sqs", feature = "sns", feature = "lambda-invoke"))]
/// The W3C context of `cx`, as `(key, value)` pairs in [`W3C_KEYS`] order, in the formats
/// `OTEL_PROPAGATORS` names.
pub(crate) fn w3c_context(cx: &opentelemetry::Context) -> Vec<(&'static str, String)> {
    /// Keeps the W3C keys only, without a map: this runs once per message sent.
    #[derive(Default)]
    struct W3cCarrier([Option<String>; 3]);
    impl opentelemetry::propagation::Injector for W3cCarrier {
        fn set(&mut self, key: &str, value: String) {
            if let Some(index) = W3C_KEYS.iter().position(|k| *k == key) {
                self.0[index] = Some(value);
            }
        }
    }
    let mut carrier = W3cCarrier::default();
    crate::propagation::inject_w3c(cx, &mut carrier);
    W3C_KEYS
        .into_iter()
        .zip(carrier.0)
        .filter_map(|(key, value)| value.filter(|v| !v.is_empty()).map(|v| (key, v)))
        .collect()
}

#[cfg(feature = "dynamodb")]
fn string_array(values: Vec<String>) -> opentelemetry::Value {
    opentelemetry::Value::Array(
        values
            .into_iter()
            .map(opentelemetry::StringValue::from)
            .collect::<Vec<_>>()
            .into(),
    )
}

/// Adds the [`TracingInterceptor`] to the config builder of a DynamoDB, S3 or SQS client (the
/// services tracekit has features for, [`InterceptorBuilder`]). Any other aws-sdk-rust client takes
/// the interceptor the same way by hand, and gets the same CLIENT spans without service attributes:
/// `aws_sdk_sns::config::Builder::from(&sdk).interceptor(tracekit::aws::TracingInterceptor)`.
pub fn traced<B: InterceptorBuilder>(builder: B) -> B {
    builder.with_interceptor(TracingInterceptor)
}

/// A service config builder that accepts interceptors (every aws-sdk-rust service's `config::Builder`).
pub trait InterceptorBuilder: Sized {
    /// Adds an interceptor.
    fn with_interceptor(self, interceptor: TracingInterceptor) -> Self;
}

macro_rules! service {
    ($feature:literal, $krate:ident, $fn_name:ident, $doc:literal) => {
        #[cfg(feature = $feature)]
        impl InterceptorBuilder for $krate::config::Builder {
            fn with_interceptor(self, interceptor: TracingInterceptor) -> Self {
                self.interceptor(interceptor)
            }
        }

        #[cfg(feature = $feature)]
        #[doc = $doc]
        pub fn $fn_name(sdk: &aws_types::SdkConfig) -> $krate::Client {
            $krate::Client::from_conf(traced($krate::config::Builder::from(sdk)).build())
        }
    };
}

service!(
    "dynamodb",
    aws_sdk_dynamodb,
    dynamodb_client,
    "A traced DynamoDB client."
);
service!(
    "s3",
    aws_sdk_s3,
    s3_client,
    "A traced S3 client (virtual-hosted style; see [`traced`] for path style)."
);
service!("sqs", aws_sdk_sqs, sqs_client, "A traced SQS client.");
service!("sns", aws_sdk_sns, sns_client, "A traced SNS client.");
service!(
    "eventbridge",
    aws_sdk_eventbridge,
    eventbridge_client,
    "A traced EventBridge client."
);
service!(
    "sfn",
    aws_sdk_sfn,
    sfn_client,
    "A traced Step Functions client."
);
service!(
    "lambda-invoke",
    aws_sdk_lambda,
    lambda_client,
    "A traced Lambda client."
);

#[cfg(feature = "sns")]
pub(crate) mod sns;

#[cfg(feature = "eventbridge")]
pub(crate) mod eventbridge;

#[cfg(feature = "sfn")]
mod sfn;

#[cfg(feature = "lambda-invoke")]
mod lambda_invoke;

#[cfg(feature = "dynamodb")]
mod dynamodb;

#[cfg(feature = "s3")]
mod s3;

#[cfg(feature = "sqs")]
pub(crate) mod sqs;

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "sqs")]
    proptest::proptest! {
        /// For any set of user attributes, injection keeps every one unchanged and never exceeds ten.
        #[test]
        fn injection_never_loses_a_user_attribute_nor_exceeds_ten(
            keys in proptest::collection::btree_set("[a-z]{1,8}|traceparent|tracestate|baggage", 0..12),
        ) {
            use aws_sdk_sqs::types::MessageAttributeValue;
            let mut attributes: std::collections::HashMap<String, MessageAttributeValue> = keys
                .iter()
                .map(|k| (k.clone(), MessageAttributeValue::builder().data_type("String").string_value(format!("user-{k}")).build().expect("attribute")))
                .collect();
            let before = attributes.clone();
            let context = [
                ("traceparent", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01".to_owned()),
                ("tracestate", "vendor=x".to_owned()),
                ("baggage", "tenant=a".to_owned()),
            ];
            let added = sqs::inject_pairs(&mut attributes, context);
            for (key, value) in &before {
                proptest::prop_assert_eq!(attributes.get(key), Some(value));
            }
            proptest::prop_assert!(attributes.len() <= MAX_MESSAGE_ATTRIBUTES.max(before.len()));
            proptest::prop_assert_eq!(attributes.len(), before.len() + added);
            if before.len() < MAX_MESSAGE_ATTRIBUTES && !before.contains_key("traceparent") {
                proptest::prop_assert!(attributes.contains_key("traceparent"), "traceparent goes first where it fits");
            }
        }
    }

    #[cfg(feature = "sqs")]
    #[test]
    fn a_value_sqs_would_refuse_is_not_injected() {
        // Baggage metadata keeps raw characters (found by fuzzing); SQS refuses NUL and would fail
        // the user's send.
        let mut attributes = std::collections::HashMap::new();
        let context = [
            (
                "traceparent",
                "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01".to_owned(),
            ),
            ("baggage", "congo=t61;\u{0}\u{0}494bd88".to_owned()),
            ("tracestate", "vendor=\u{FFFE}".to_owned()),
        ];
        assert_eq!(sqs::inject_pairs(&mut attributes, context), 1);
        assert_eq!(attributes.keys().collect::<Vec<_>>(), vec!["traceparent"]);
        let mut tab_ok = std::collections::HashMap::new();
        assert_eq!(
            sqs::inject_pairs(&mut tab_ok, [("baggage", "k=v;\tnote=é😀".to_owned())]),
            1
        );
    }

    #[test]
    fn error_codes_come_from_the_modeled_error() {
        // (error message, expected code)
        let cases = [
            (
                "ConditionalCheckFailedException: The conditional request failed",
                "ConditionalCheckFailedException",
            ),
            ("NoSuchKey", "NoSuchKey"),
            ("unhandled error (NotFound)", "NotFound"),
            ("dispatch failure: connection refused", "dispatch failure"),
        ];
        for (message, expected) in cases {
            assert_eq!(error_code(message), expected);
        }
    }
}
