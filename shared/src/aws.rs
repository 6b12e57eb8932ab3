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
//! attribute is never dropped or overwritten, and tracing never fails a send.
//!
//! The SDK cannot hold an interceptor in `SdkConfig`, so it is added per client:
//!
//! ```no_run
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
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Attribute keys. [AWS SDK conventions](https://opentelemetry.io/docs/specs/semconv/cloud-providers/aws-sdk/),
/// [DynamoDB](https://opentelemetry.io/docs/specs/semconv/database/dynamodb/),
/// [SQS](https://opentelemetry.io/docs/specs/semconv/messaging/sqs/).
// Each service's keys are used only with its feature on.
#[cfg_attr(
    not(all(feature = "dynamodb", feature = "s3", feature = "sqs")),
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
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_SQS_QUEUE_URL as SQS_QUEUE_URL;
    pub(super) use opentelemetry_semantic_conventions::attribute::DB_SYSTEM_NAME;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_BATCH_MESSAGE_COUNT;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_DESTINATION_NAME;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_MESSAGE_ID;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_OPERATION_NAME;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_OPERATION_TYPE;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_SYSTEM;
    /// The name older X-Ray translators read.
    pub(super) const SQS_QUEUE_URL_LEGACY: &str = "aws.queue_url";
}

/// The SQS message system attribute X-Ray reads; it does not count against the ten-attribute limit.
/// [SQS and X-Ray](https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html)
pub const AWS_TRACE_HEADER: &str = "AWSTraceHeader";
/// Real SQS rejects a message with more message attributes than this.
/// [SQS quotas](https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html)
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// W3C keys injected into SQS message attributes, in order of importance.
#[cfg(feature = "sqs")]
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
        let (service, operation) = match cfg.load::<Metadata>() {
            Some(metadata) => (metadata.service().to_owned(), metadata.name().to_owned()),
            None => return Ok(()),
        };
        let producer =
            service == "SQS" && matches!(operation.as_str(), "SendMessage" | "SendMessageBatch");
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

#[cfg(feature = "sqs")]
/// The W3C context of `cx`, as `(key, value)` pairs in [`W3C_KEYS`] order, in the formats
/// `OTEL_PROPAGATORS` names.
fn w3c_context(cx: &opentelemetry::Context) -> Vec<(&'static str, String)> {
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

#[cfg(feature = "dynamodb")]
mod dynamodb {
    use super::{Span, attr, string_array};
    use aws_sdk_dynamodb::{operation as op, types::ConsumedCapacity};
    use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    const DB_SYSTEM: &str = "aws.dynamodb";

    /// Every table the call touches, batch and transact operations included.
    fn table_names(input: &Input) -> Vec<String> {
        macro_rules! single {
            ($($module:ident :: $ty:ident),* $(,)?) => {
                $(if let Some(input) = input.downcast_ref::<op::$module::$ty>() {
                    return input.table_name.iter().cloned().collect();
                })*
            };
        }
        single!(
            put_item::PutItemInput,
            get_item::GetItemInput,
            update_item::UpdateItemInput,
            delete_item::DeleteItemInput,
            query::QueryInput,
            scan::ScanInput,
            describe_table::DescribeTableInput,
            create_table::CreateTableInput,
            delete_table::DeleteTableInput,
            update_table::UpdateTableInput,
        );
        let mut names: Vec<String> = Vec::new();
        if let Some(input) = input.downcast_ref::<op::batch_write_item::BatchWriteItemInput>() {
            names.extend(
                input
                    .request_items
                    .iter()
                    .flat_map(|items| items.keys().cloned()),
            );
        } else if let Some(input) = input.downcast_ref::<op::batch_get_item::BatchGetItemInput>() {
            names.extend(
                input
                    .request_items
                    .iter()
                    .flat_map(|items| items.keys().cloned()),
            );
        } else if let Some(input) =
            input.downcast_ref::<op::transact_write_items::TransactWriteItemsInput>()
        {
            for item in input.transact_items.iter().flatten() {
                names.extend(item.put.as_ref().map(|p| p.table_name.clone()));
                names.extend(item.update.as_ref().map(|u| u.table_name.clone()));
                names.extend(item.delete.as_ref().map(|d| d.table_name.clone()));
                names.extend(item.condition_check.as_ref().map(|c| c.table_name.clone()));
            }
        } else if let Some(input) =
            input.downcast_ref::<op::transact_get_items::TransactGetItemsInput>()
        {
            for item in input.transact_items.iter().flatten() {
                names.extend(item.get.as_ref().map(|g| g.table_name.clone()));
            }
        }
        names.sort();
        names.dedup();
        names
    }

    pub(super) fn record_input(span: &Span, input: &Input) {
        span.set_attribute(attr::DB_SYSTEM_NAME, DB_SYSTEM);
        let names = table_names(input);
        if !names.is_empty() {
            span.set_attribute(attr::DYNAMODB_TABLE_NAMES, string_array(names));
        }
        // Read options only: never key or item values.
        let (consistent_read, projection, index_name, limit) =
            if let Some(input) = input.downcast_ref::<op::get_item::GetItemInput>() {
                (
                    input.consistent_read,
                    input.projection_expression.as_ref(),
                    None,
                    None,
                )
            } else if let Some(input) = input.downcast_ref::<op::query::QueryInput>() {
                let index = input.index_name.as_ref();
                let projection = input.projection_expression.as_ref();
                (input.consistent_read, projection, index, input.limit)
            } else if let Some(input) = input.downcast_ref::<op::scan::ScanInput>() {
                let index = input.index_name.as_ref();
                let projection = input.projection_expression.as_ref();
                (input.consistent_read, projection, index, input.limit)
            } else {
                return;
            };
        if let Some(consistent_read) = consistent_read {
            span.set_attribute(attr::DYNAMODB_CONSISTENT_READ, consistent_read);
        }
        if let Some(projection) = projection {
            span.set_attribute(attr::DYNAMODB_PROJECTION, projection.clone());
        }
        if let Some(index_name) = index_name {
            span.set_attribute(attr::DYNAMODB_INDEX_NAME, index_name.clone());
        }
        if let Some(limit) = limit {
            span.set_attribute(attr::DYNAMODB_LIMIT, i64::from(limit));
        }
    }

    /// `{"TableName":…,"CapacityUnits":…}` per table, the JSON form the semantic conventions give.
    fn consumed_capacity_json(capacity: &ConsumedCapacity) -> String {
        let mut json = serde_json::Map::new();
        if let Some(table) = &capacity.table_name {
            json.insert("TableName".to_owned(), table.clone().into());
        }
        for (key, units) in [
            ("CapacityUnits", capacity.capacity_units),
            ("ReadCapacityUnits", capacity.read_capacity_units),
            ("WriteCapacityUnits", capacity.write_capacity_units),
        ] {
            if let Some(units) = units {
                json.insert(key.to_owned(), units.into());
            }
        }
        serde_json::Value::Object(json).to_string()
    }

    /// Consumed capacity (when the caller asked for it) and query/scan counts.
    pub(super) fn record_output(span: &Span, output: &Output) {
        macro_rules! single {
            ($($module:ident :: $ty:ident),* $(,)?) => {
                $(if let Some(output) = output.downcast_ref::<op::$module::$ty>() {
                    output.consumed_capacity.iter().collect::<Vec<_>>()
                } else)* { Vec::new() }
            };
        }
        macro_rules! many {
            ($($module:ident :: $ty:ident),* $(,)?) => {
                $(if let Some(output) = output.downcast_ref::<op::$module::$ty>() {
                    output.consumed_capacity.iter().flatten().collect::<Vec<_>>()
                } else)* { Vec::new() }
            };
        }
        let mut capacity = single!(
            put_item::PutItemOutput,
            get_item::GetItemOutput,
            update_item::UpdateItemOutput,
            delete_item::DeleteItemOutput,
            query::QueryOutput,
            scan::ScanOutput,
        );
        if capacity.is_empty() {
            capacity = many!(
                batch_write_item::BatchWriteItemOutput,
                batch_get_item::BatchGetItemOutput,
                transact_write_items::TransactWriteItemsOutput,
                transact_get_items::TransactGetItemsOutput,
            );
        }
        if !capacity.is_empty() {
            let json = capacity.into_iter().map(consumed_capacity_json).collect();
            span.set_attribute(attr::DYNAMODB_CONSUMED_CAPACITY, string_array(json));
        }
        let counts = if let Some(output) = output.downcast_ref::<op::query::QueryOutput>() {
            Some((output.count, output.scanned_count))
        } else {
            output
                .downcast_ref::<op::scan::ScanOutput>()
                .map(|output| (output.count, output.scanned_count))
        };
        if let Some((count, scanned_count)) = counts {
            span.set_attribute(attr::DYNAMODB_COUNT, i64::from(count));
            span.set_attribute(attr::DYNAMODB_SCANNED_COUNT, i64::from(scanned_count));
        }
    }
}

#[cfg(feature = "s3")]
mod s3 {
    use super::{Span, attr};
    use aws_sdk_s3::operation as op;
    use aws_smithy_runtime_api::client::interceptors::context::Input;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    pub(super) fn record_input(span: &Span, input: &Input) {
        macro_rules! bucket_key {
            ($($module:ident :: $ty:ident),* $(,)?) => {
                $(if let Some(input) = input.downcast_ref::<op::$module::$ty>() {
                    if let Some(bucket) = &input.bucket {
                        span.set_attribute(attr::S3_BUCKET, bucket.clone());
                    }
                    if let Some(key) = &input.key {
                        span.set_attribute(attr::S3_KEY, key.clone());
                    }
                    return;
                })*
            };
        }
        macro_rules! bucket {
            ($($module:ident :: $ty:ident),* $(,)?) => {
                $(if let Some(input) = input.downcast_ref::<op::$module::$ty>() {
                    if let Some(bucket) = &input.bucket {
                        span.set_attribute(attr::S3_BUCKET, bucket.clone());
                    }
                    return;
                })*
            };
        }
        bucket_key!(
            put_object::PutObjectInput,
            get_object::GetObjectInput,
            head_object::HeadObjectInput,
            delete_object::DeleteObjectInput,
            copy_object::CopyObjectInput,
            create_multipart_upload::CreateMultipartUploadInput,
            upload_part::UploadPartInput,
            complete_multipart_upload::CompleteMultipartUploadInput,
        );
        bucket!(
            list_objects_v2::ListObjectsV2Input,
            head_bucket::HeadBucketInput,
            create_bucket::CreateBucketInput,
            delete_bucket::DeleteBucketInput,
        );
    }
}

#[cfg(feature = "sqs")]
pub(crate) mod sqs {
    //! SQS send-side propagation; [`inject`] is public as `tracekit::sqs::inject`.
    use super::{MAX_MESSAGE_ATTRIBUTES, Span, attr, w3c_context};
    use aws_sdk_sqs::{
        operation as op,
        types::{
            MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
        },
    };
    use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};
    use std::collections::HashMap;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    const MESSAGING_SYSTEM: &str = "aws_sqs";
    const STRING: &str = "String";

    /// Adds W3C context (`traceparent`, then `tracestate`, then `baggage`) from the current span to
    /// `attributes`, each only if the key is free and the message keeps at most
    /// [`MAX_MESSAGE_ATTRIBUTES`]. Returns how many were added. Never removes or replaces anything.
    pub fn inject(attributes: &mut HashMap<String, MessageAttributeValue>) -> usize {
        inject_pairs(attributes, w3c_context(&Span::current().context()))
    }

    pub(crate) fn inject_pairs(
        attributes: &mut HashMap<String, MessageAttributeValue>,
        pairs: impl IntoIterator<Item = (&'static str, String)>,
    ) -> usize {
        let mut added = 0;
        for (key, value) in pairs {
            if attributes.len() >= MAX_MESSAGE_ATTRIBUTES || attributes.contains_key(key) {
                continue;
            }
            // Baggage read from an incoming request may hold characters SQS refuses, which would
            // fail the user's send: such a value does not travel.
            if !value.chars().all(sqs_allows) {
                tracing::debug!(
                    key,
                    "a propagation value has characters SQS refuses; not sent"
                );
                continue;
            }
            let Ok(attribute) = MessageAttributeValue::builder()
                .data_type(STRING)
                .string_value(value)
                .build()
            else {
                continue;
            };
            attributes.insert(key.to_owned(), attribute);
            added += 1;
        }
        added
    }

    /// The characters SQS accepts in a message attribute value: `#x9 | #xA | #xD | #x20-#xD7FF |
    /// #xE000-#xFFFD | #x10000-#x10FFFF`.
    /// [SendMessage](https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html)
    fn sqs_allows(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    }

    /// Sets `AWSTraceHeader` unless the user set one.
    fn set_trace_header(
        system: &mut Option<
            HashMap<MessageSystemAttributeNameForSends, MessageSystemAttributeValue>,
        >,
        header: &str,
    ) {
        let system = system.get_or_insert_with(HashMap::new);
        if system.contains_key(&MessageSystemAttributeNameForSends::AwsTraceHeader) {
            return;
        }
        if let Ok(value) = MessageSystemAttributeValue::builder()
            .data_type(STRING)
            .string_value(header)
            .build()
        {
            system.insert(MessageSystemAttributeNameForSends::AwsTraceHeader, value);
        }
    }

    fn queue_attributes(span: &Span, queue_url: Option<&str>) {
        span.set_attribute(attr::MESSAGING_SYSTEM, MESSAGING_SYSTEM);
        if let Some(url) = queue_url {
            span.set_attribute(attr::SQS_QUEUE_URL, url.to_owned());
            span.set_attribute(attr::SQS_QUEUE_URL_LEGACY, url.to_owned());
            if let Some(name) = url.rsplit('/').next().filter(|n| !n.is_empty()) {
                span.set_attribute(attr::MESSAGING_DESTINATION_NAME, name.to_owned());
            }
        }
    }

    fn operation(span: &Span, name: &'static str) {
        span.set_attribute(attr::MESSAGING_OPERATION_NAME, name);
        span.set_attribute(attr::MESSAGING_OPERATION_TYPE, name);
    }

    pub(super) fn record_and_inject(
        span: &Span,
        cx: &opentelemetry::Context,
        xray_header: Option<&str>,
        input: &mut Input,
    ) {
        if let Some(input) = input.downcast_mut::<op::send_message::SendMessageInput>() {
            queue_attributes(span, input.queue_url.as_deref());
            operation(span, "send");
            let w3c = w3c_context(cx);
            if let Some(header) = xray_header {
                set_trace_header(&mut input.message_system_attributes, header);
            }
            let attributes = input.message_attributes.get_or_insert_with(HashMap::new);
            inject_pairs(attributes, w3c);
            if attributes.is_empty() {
                input.message_attributes = None;
            }
        } else if let Some(input) =
            input.downcast_mut::<op::send_message_batch::SendMessageBatchInput>()
        {
            queue_attributes(span, input.queue_url.as_deref());
            operation(span, "send");
            let entries = input.entries.as_deref_mut().unwrap_or_default();
            span.set_attribute(attr::MESSAGING_BATCH_MESSAGE_COUNT, entries.len() as i64);
            let w3c = w3c_context(cx);
            for entry in entries {
                if let Some(header) = xray_header {
                    set_trace_header(&mut entry.message_system_attributes, header);
                }
                let attributes = entry.message_attributes.get_or_insert_with(HashMap::new);
                inject_pairs(attributes, w3c.iter().cloned());
                if attributes.is_empty() {
                    entry.message_attributes = None;
                }
            }
        } else if let Some(input) = input.downcast_ref::<op::receive_message::ReceiveMessageInput>()
        {
            queue_attributes(span, input.queue_url.as_deref());
            operation(span, "receive");
        } else if let Some(input) = input.downcast_ref::<op::delete_message::DeleteMessageInput>() {
            queue_attributes(span, input.queue_url.as_deref());
        } else if let Some(input) =
            input.downcast_ref::<op::get_queue_attributes::GetQueueAttributesInput>()
        {
            queue_attributes(span, input.queue_url.as_deref());
        } else {
            span.set_attribute(attr::MESSAGING_SYSTEM, MESSAGING_SYSTEM);
        }
    }

    pub(super) fn record_output(span: &Span, output: &Output) {
        if let Some(output) = output.downcast_ref::<op::send_message::SendMessageOutput>() {
            if let Some(id) = &output.message_id {
                span.set_attribute(attr::MESSAGING_MESSAGE_ID, id.clone());
            }
        } else if let Some(output) =
            output.downcast_ref::<op::receive_message::ReceiveMessageOutput>()
        {
            let count = output.messages.as_ref().map_or(0, Vec::len);
            span.set_attribute(attr::MESSAGING_BATCH_MESSAGE_COUNT, count as i64);
        }
    }
}

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
