//! `faas.trigger` and the span name, from the shape of the event.
//!
//! The layer sees the raw event bytes before any handler type is known, so detection reads only the
//! few keys that tell event sources apart and ignores everything else (no payload is kept). Of an
//! HTTP event it also keeps the method, the route template, the path (never the query string) and
//! the trace headers of the request (`traceparent`, `tracestate`, `X-Amzn-Trace-Id`: the carrier
//! `xray-lambda` reads); no other header.
//! [Event shapes](https://docs.aws.amazon.com/lambda/latest/dg/lambda-services.html).

use serde::{
    Deserialize, Deserializer,
    de::{IgnoredAny, MapAccess, Visitor},
};
use serde_json::value::RawValue;
use std::{borrow::Cow, fmt};

/// The `faas.trigger` values of the semantic conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TriggerKind {
    /// A data source changed (S3, DynamoDB Streams).
    Datasource,
    /// An HTTP request (API Gateway, ALB, function URL).
    Http,
    /// A message (SQS, SNS, Kinesis, EventBridge).
    Pubsub,
    /// A schedule.
    Timer,
    /// Anything else, including direct invocations.
    Other,
}

impl TriggerKind {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Datasource => "datasource",
            TriggerKind::Http => "http",
            TriggerKind::Pubsub => "pubsub",
            TriggerKind::Timer => "timer",
            TriggerKind::Other => "other",
        }
    }
}

/// What the event says about its source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Trigger {
    /// `faas.trigger`.
    pub kind: TriggerKind,
    /// HTTP method, for HTTP events.
    pub http_method: Option<String>,
    /// Route template (`/orders/{id}`), for HTTP events that have one.
    pub http_route: Option<String>,
    /// The request's path without its query string (`url.path`), for HTTP events.
    pub url_path: Option<String>,
    /// The request's trace headers, for HTTP events.
    pub(crate) carrier: TraceHeaders,
}

/// The trace headers of an HTTP event's request, found whatever their case; no other header is
/// read. Every value of `traceparent` and `tracestate` is kept, from keys that differ in case and
/// from `multiValueHeaders` (API Gateway REST, ALB with multi-value headers), so that the strict
/// reader refuses a repeated `traceparent` and joins repeated `tracestate`s, as W3C asks; of
/// `X-Amzn-Trace-Id` the last key's (first) value is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TraceHeaders {
    pub(crate) traceparent: Vec<String>,
    pub(crate) tracestate: Vec<String>,
    pub(crate) xray: Option<String>,
}

impl TraceHeaders {
    const TRACEPARENT: &str = "traceparent";
    const TRACESTATE: &str = "tracestate";
    const XRAY: &str = "x-amzn-trace-id";

    pub(crate) fn is_empty(&self) -> bool {
        self.traceparent.is_empty() && self.xray.is_none()
    }

    /// `self` (from `headers`) with what `multi` (from `multiValueHeaders`) holds.
    fn with_multi_value(self, multi: TraceHeaders) -> TraceHeaders {
        TraceHeaders {
            traceparent: every_value(self.traceparent, multi.traceparent),
            tracestate: every_value(self.tracestate, multi.tracestate),
            xray: self.xray.or(multi.xray),
        }
    }
}

/// The most values of one header kept: one more than W3C's 32 `tracestate` members (and more than
/// the one `traceparent` a request may have), so that a request holding thousands costs no more.
const MAX_VALUES: usize = 33;

fn keep(slot: &mut Vec<String>, values: Vec<String>) {
    let room = MAX_VALUES.saturating_sub(slot.len());
    slot.extend(values.into_iter().take(room));
}

/// One header's values from `headers` (`single`) and `multiValueHeaders` (`multi`). API Gateway
/// REST sends both, `headers` holding the last of `multi`'s values: `multi` has them all, and a
/// value of `single` it lacks is one more.
fn every_value(single: Vec<String>, mut multi: Vec<String>) -> Vec<String> {
    if multi.is_empty() {
        return single;
    }
    for value in single {
        if multi.len() < MAX_VALUES && !multi.contains(&value) {
            multi.push(value);
        }
    }
    multi
}

impl opentelemetry::propagation::Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        if key.eq_ignore_ascii_case(Self::TRACEPARENT) {
            self.traceparent.first().map(String::as_str)
        } else if key.eq_ignore_ascii_case(Self::TRACESTATE) {
            self.tracestate.first().map(String::as_str)
        } else if key.eq_ignore_ascii_case(Self::XRAY) {
            self.xray.as_deref()
        } else {
            None
        }
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values = if key.eq_ignore_ascii_case(Self::TRACEPARENT) {
            &self.traceparent
        } else if key.eq_ignore_ascii_case(Self::TRACESTATE) {
            &self.tracestate
        } else {
            return self.get(key).map(|value| vec![value]);
        };
        (!values.is_empty()).then(|| values.iter().map(String::as_str).collect())
    }

    fn keys(&self) -> Vec<&str> {
        [
            (Self::TRACEPARENT, !self.traceparent.is_empty()),
            (Self::TRACESTATE, !self.tracestate.is_empty()),
            (Self::XRAY, self.xray.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, present)| present.then_some(key))
        .collect()
    }
}

impl<'de> Deserialize<'de> for TraceHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Headers;

        impl<'de> Visitor<'de> for Headers {
            type Value = TraceHeaders;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of headers")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TraceHeaders, A::Error> {
                let mut headers = TraceHeaders::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let known = [
                        TraceHeaders::TRACEPARENT,
                        TraceHeaders::TRACESTATE,
                        TraceHeaders::XRAY,
                    ]
                    .into_iter()
                    .find(|name| key.eq_ignore_ascii_case(name));
                    let Some(name) = known else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    // A header's value, or a multi-value header's values; anything but a string
                    // is no value.
                    let values: Vec<String> = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::String(value) => vec![value],
                        serde_json::Value::Array(values) => values
                            .into_iter()
                            .filter_map(|value| match value {
                                serde_json::Value::String(value) => Some(value),
                                _ => None,
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    match name {
                        TraceHeaders::TRACEPARENT => keep(&mut headers.traceparent, values),
                        TraceHeaders::TRACESTATE => keep(&mut headers.tracestate, values),
                        _ => headers.xray = values.into_iter().next(),
                    }
                }
                Ok(headers)
            }
        }

        deserializer.deserialize_map(Headers)
    }
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "routeKey", borrow)]
    route_key: Option<&'a RawValue>,
    #[serde(rename = "httpMethod")]
    http_method: Option<&'a RawValue>,
    resource: Option<&'a RawValue>,
    #[serde(rename = "requestContext")]
    request_context: Option<RequestContext<'a>>,
    #[serde(rename = "Records")]
    records: Option<Vec<Record<'a>>>,
    #[serde(rename = "detail-type")]
    detail_type: Option<&'a RawValue>,
    source: Option<&'a RawValue>,
    #[serde(rename = "rawPath")]
    raw_path: Option<&'a RawValue>,
    path: Option<&'a RawValue>,
    headers: Option<TraceHeaders>,
    #[serde(rename = "multiValueHeaders")]
    multi_value_headers: Option<TraceHeaders>,
    /// Kafka (MSK, self-managed) and Amazon MQ events name their source at the top.
    #[serde(rename = "eventSource")]
    event_source: Option<&'a RawValue>,
    /// Bedrock agent action groups: `agent` and `actionGroup` beside an `httpMethod`.
    agent: Option<&'a RawValue>,
    #[serde(rename = "actionGroup")]
    action_group: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RequestContext<'a> {
    #[serde(borrow)]
    http: Option<HttpContext<'a>>,
    elb: Option<&'a RawValue>,
    /// API Gateway REST: the path as the client sent it, the stage included.
    path: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct HttpContext<'a> {
    #[serde(borrow)]
    method: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(rename = "eventSource", borrow)]
    event_source: Option<&'a RawValue>,
    #[serde(rename = "EventSource")]
    event_source_sns: Option<&'a RawValue>,
    /// Lambda@Edge: CloudFront's request (and response) under `cf`.
    cf: Option<CloudFront<'a>>,
}

#[derive(Deserialize)]
struct CloudFront<'a> {
    #[serde(borrow)]
    request: Option<CloudFrontRequest<'a>>,
}

#[derive(Deserialize)]
struct CloudFrontRequest<'a> {
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    uri: Option<&'a RawValue>,
}

/// A path with any query string cut off (the events keep it apart, but a path is never trusted to).
fn without_query(mut path: String) -> String {
    if let Some(query) = path.find('?') {
        path.truncate(query);
    }
    path
}

/// A JSON string value, or nothing for any other JSON type.
fn string(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
}

impl Trigger {
    /// Reads the event source from the raw event. Anything unreadable is `other`.
    pub fn detect(event: &[u8]) -> Trigger {
        let other = Trigger {
            kind: TriggerKind::Other,
            http_method: None,
            http_route: None,
            url_path: None,
            carrier: TraceHeaders::default(),
        };
        let Ok(mut probe) = serde_json::from_slice::<Probe<'_>>(event) else {
            return other;
        };
        let request_context = probe.request_context.as_ref();
        // Moved out of the probe (no header is copied); empty unless the event has headers.
        let carrier = {
            let single = probe.headers.take().unwrap_or_default();
            single.with_multi_value(probe.multi_value_headers.take().unwrap_or_default())
        };

        // API Gateway HTTP API (payload 2.0) and function URLs.
        if let Some(route_key) = string(probe.route_key) {
            let method = request_context
                .and_then(|rc| rc.http.as_ref())
                .and_then(|http| string(http.method));
            let route = route_key
                .split_once(' ')
                .map(|(_, route)| route.to_owned())
                .filter(|_| route_key != "$default");
            return Trigger {
                kind: TriggerKind::Http,
                http_method: method,
                http_route: route,
                url_path: string(probe.raw_path).map(without_query),
                carrier,
            };
        }
        if probe.agent.is_some() && probe.action_group.is_some() {
            // A Bedrock agent's action group: an `httpMethod` and `apiPath` describe the API the
            // agent called, not an HTTP request this function serves.
            return other;
        }
        if let Some(source) = string(probe.event_source) {
            let kind = match source.as_str() {
                "aws:kafka" | "SelfManagedKafka" | "aws:mq" | "aws:rmq" => TriggerKind::Pubsub,
                _ => TriggerKind::Other,
            };
            if kind != TriggerKind::Other {
                return Trigger { kind, ..other };
            }
        }
        if let Some(method) = string(probe.http_method) {
            // ALB: no route template exists, only the (high-cardinality) path.
            let is_alb = request_context.is_some_and(|rc| rc.elb.is_some());
            return Trigger {
                kind: TriggerKind::Http,
                http_method: Some(method),
                http_route: if is_alb { None } else { string(probe.resource) },
                // The path the handler sees (lambda_http's choice): API Gateway REST's as the
                // client sent it, the stage included; ALB's as is.
                url_path: request_context
                    .and_then(|rc| string(rc.path))
                    .or_else(|| string(probe.path))
                    .map(without_query),
                carrier,
            };
        }
        if let Some(request) = probe
            .records
            .as_ref()
            .and_then(|records| records.first())
            .and_then(|record| record.cf.as_ref())
            .and_then(|cf| cf.request.as_ref())
        {
            // Lambda@Edge: the viewer's (or origin's) request, as CloudFront hands it over.
            return Trigger {
                kind: TriggerKind::Http,
                http_method: string(request.method),
                url_path: string(request.uri).map(without_query),
                ..other
            };
        }
        if let Some(records) = &probe.records {
            let source = records
                .first()
                .and_then(|r| string(r.event_source).or_else(|| string(r.event_source_sns)));
            let kind = match source.as_deref() {
                Some("aws:sqs" | "aws:sns" | "aws:kinesis") => TriggerKind::Pubsub,
                Some("aws:s3" | "aws:dynamodb") => TriggerKind::Datasource,
                _ => TriggerKind::Other,
            };
            return Trigger { kind, ..other };
        }
        if let (Some(detail_type), Some(source)) = (string(probe.detail_type), string(probe.source))
        {
            let kind = if detail_type == "Scheduled Event" && source == "aws.events" {
                TriggerKind::Timer
            } else {
                TriggerKind::Pubsub
            };
            return Trigger { kind, ..other };
        }
        other
    }

    /// The span name for HTTP events (`{method} {route}`, or `{method}` without a route), as the HTTP
    /// conventions name server spans; `None` for other events (the span takes the function's name).
    pub fn span_name(&self) -> Option<String> {
        let method = self.http_method.as_deref()?;
        Some(match self.http_route.as_deref() {
            Some(route) => format!("{method} {route}"),
            None => method.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_is_detected_from_the_event_shape() {
        // (event, kind, span name, reason)
        let cases: &[(&str, TriggerKind, Option<&str>, &str)] = &[
            (
                r#"{"version":"2.0","routeKey":"POST /orders","rawPath":"/orders","requestContext":{"http":{"method":"POST","path":"/orders"}},"body":"{}"}"#,
                TriggerKind::Http,
                Some("POST /orders"),
                "API Gateway v2",
            ),
            (
                r#"{"version":"2.0","routeKey":"$default","rawPath":"/x","requestContext":{"http":{"method":"GET"}}}"#,
                TriggerKind::Http,
                Some("GET"),
                "function URL / $default route: method only",
            ),
            (
                r#"{"resource":"/orders/{id}","path":"/orders/42","httpMethod":"GET","requestContext":{"stage":"prod"}}"#,
                TriggerKind::Http,
                Some("GET /orders/{id}"),
                "API Gateway v1 (REST)",
            ),
            (
                r#"{"requestContext":{"elb":{"targetGroupArn":"arn:aws:elasticloadbalancing:..."}},"httpMethod":"GET","path":"/health"}"#,
                TriggerKind::Http,
                Some("GET"),
                "ALB: no route template",
            ),
            (
                r#"{"Records":[{"messageId":"1","body":"x","eventSource":"aws:sqs","attributes":{}}]}"#,
                TriggerKind::Pubsub,
                None,
                "SQS",
            ),
            (
                r#"{"Records":[{"EventSource":"aws:sns","Sns":{"Message":"x"}}]}"#,
                TriggerKind::Pubsub,
                None,
                "SNS",
            ),
            (
                r#"{"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"b"}}}]}"#,
                TriggerKind::Datasource,
                None,
                "S3",
            ),
            (
                r#"{"Records":[{"eventSource":"aws:dynamodb","dynamodb":{}}]}"#,
                TriggerKind::Datasource,
                None,
                "DynamoDB Streams",
            ),
            (
                r#"{"version":"0","detail-type":"Scheduled Event","source":"aws.events","detail":{}}"#,
                TriggerKind::Timer,
                None,
                "EventBridge schedule",
            ),
            (
                r#"{"version":"0","detail-type":"order.created","source":"shop","detail":{}}"#,
                TriggerKind::Pubsub,
                None,
                "EventBridge event",
            ),
            (
                r#"{"hello":"world"}"#,
                TriggerKind::Other,
                None,
                "direct invocation",
            ),
            (
                r#"{"Records":[]}"#,
                TriggerKind::Other,
                None,
                "empty records",
            ),
            (
                r#"{"Records":"nope"}"#,
                TriggerKind::Other,
                None,
                "records of the wrong type",
            ),
            (
                r#"{"routeKey":42}"#,
                TriggerKind::Other,
                None,
                "routeKey not a string",
            ),
            (
                r#"{"messageVersion":"1.0","agent":{"name":"orders","id":"A1","alias":"live","version":"1"},"actionGroup":"orders","apiPath":"/orders/{id}","httpMethod":"GET","inputText":"where is my order"}"#,
                TriggerKind::Other,
                None,
                "Bedrock agent action group: not an HTTP request",
            ),
            (
                r#"{"Records":[{"cf":{"config":{"distributionId":"E1","eventType":"viewer-request"},"request":{"method":"GET","uri":"/orders/42","querystring":"a=1","headers":{}}}}]}"#,
                TriggerKind::Http,
                Some("GET"),
                "Lambda@Edge viewer request",
            ),
            (
                r#"{"eventSource":"aws:kafka","eventSourceArn":"arn:aws:kafka:us-east-1:123456789012:cluster/orders/1","records":{"orders-0":[{"topic":"orders","partition":0,"offset":1,"value":"e30="}]}}"#,
                TriggerKind::Pubsub,
                None,
                "Amazon MSK",
            ),
            (
                r#"{"eventSource":"SelfManagedKafka","bootstrapServers":"b-1:9092","records":{}}"#,
                TriggerKind::Pubsub,
                None,
                "self-managed Kafka",
            ),
            (
                r#"{"eventSource":"aws:mq","eventSourceArn":"arn:aws:mq:us-east-1:123456789012:broker:orders:b-1","messages":[{"messageID":"ID:1","data":"e30="}]}"#,
                TriggerKind::Pubsub,
                None,
                "Amazon MQ (ActiveMQ)",
            ),
            (
                r#"{"eventSource":"aws:rmq","eventSourceArn":"arn:aws:mq:us-east-1:123456789012:broker:orders:b-1","rmqMessagesByQueue":{}}"#,
                TriggerKind::Pubsub,
                None,
                "Amazon MQ (RabbitMQ)",
            ),
            (r#"[1,2,3]"#, TriggerKind::Other, None, "not an object"),
            ("not json", TriggerKind::Other, None, "not JSON"),
            ("", TriggerKind::Other, None, "empty body"),
        ];
        for (event, kind, name, reason) in cases {
            let trigger = Trigger::detect(event.as_bytes());
            assert_eq!(trigger.kind, *kind, "{reason}");
            assert_eq!(trigger.span_name().as_deref(), *name, "{reason}");
        }
    }

    #[test]
    fn http_events_give_their_path_and_trace_headers_and_nothing_else() {
        const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        const TP2: &str = "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01";
        const XRAY: &str =
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        // (event, url.path, every traceparent, X-Amzn-Trace-Id, reason)
        type Case<'a> = (
            String,
            Option<&'a str>,
            &'a [&'a str],
            Option<&'a str>,
            &'a str,
        );
        let cases: &[Case<'_>] = &[
            (
                format!(r#"{{"version":"2.0","routeKey":"GET /orders/{{id}}","rawPath":"/orders/42","rawQueryString":"secret=1","headers":{{"traceparent":"{TP}","authorization":"Bearer x"}},"requestContext":{{"http":{{"method":"GET"}}}}}}"#),
                Some("/orders/42"),
                &[TP],
                None,
                "API Gateway v2: the path without its query, the W3C header",
            ),
            (
                format!(r#"{{"version":"2.0","routeKey":"$default","rawPath":"/x","headers":{{"X-Amzn-Trace-Id":"{XRAY}"}},"requestContext":{{"http":{{"method":"GET"}}}}}}"#),
                Some("/x"),
                &[],
                Some(XRAY),
                "function URL: the X-Ray header, whatever its case",
            ),
            (
                format!(r#"{{"resource":"/orders/{{id}}","path":"/orders/42","httpMethod":"GET","headers":null,"multiValueHeaders":{{"Traceparent":["{TP}","{TP2}"]}},"requestContext":{{"stage":"prod"}}}}"#),
                Some("/orders/42"),
                &[TP, TP2],
                None,
                "API Gateway v1: null headers, every multi-value header kept (a repetition)",
            ),
            (
                format!(r#"{{"resource":"/x","path":"/x","httpMethod":"GET","headers":{{"traceparent":"{TP2}"}},"multiValueHeaders":{{"traceparent":["{TP}","{TP2}"]}},"requestContext":{{}}}}"#),
                Some("/x"),
                &[TP, TP2],
                None,
                "API Gateway v1: headers holds the last of multiValueHeaders' values, not one more",
            ),
            (
                format!(r#"{{"resource":"/x","path":"/x","httpMethod":"GET","headers":{{"traceparent":"{TP}"}},"multiValueHeaders":{{"traceparent":["{TP}"]}},"requestContext":{{}}}}"#),
                Some("/x"),
                &[TP],
                None,
                "API Gateway v1: one traceparent in both maps is one",
            ),
            (
                format!(r#"{{"version":"2.0","routeKey":"$default","rawPath":"/x","headers":{{"traceparent":"{TP}","TraceParent":"{TP2}"}},"requestContext":{{"http":{{"method":"GET"}}}}}}"#),
                Some("/x"),
                &[TP, TP2],
                None,
                "two keys differing in case: both kept",
            ),
            (
                r#"{"requestContext":{"elb":{"targetGroupArn":"arn"}},"httpMethod":"GET","path":"/health?probe=1","headers":{"traceparent":42}}"#.to_owned(),
                Some("/health"),
                &[],
                None,
                "ALB: a path is cut at `?`; a header that is not a string is no header",
            ),
            (
                format!(r#"{{"Records":[{{"eventSource":"aws:sqs"}}],"headers":{{"traceparent":"{TP}"}},"path":"/x"}}"#),
                None,
                &[],
                None,
                "not an HTTP event: nothing read",
            ),
        ];
        for (event, path, traceparent, xray, reason) in cases {
            let trigger = Trigger::detect(event.as_bytes());
            assert_eq!(trigger.url_path.as_deref(), *path, "{reason}");
            assert_eq!(trigger.carrier.traceparent, *traceparent, "{reason}");
            assert_eq!(trigger.carrier.xray.as_deref(), *xray, "{reason}");
        }
    }

    #[test]
    fn a_request_with_thousands_of_trace_headers_keeps_a_bounded_few() {
        let values: Vec<String> = (0..5_000).map(|n| format!("{n:055}")).collect();
        let event = serde_json::json!({"resource": "/x", "path": "/x", "httpMethod": "GET",
            "headers": {"traceparent": "a"},
            "multiValueHeaders": {"traceparent": values, "tracestate": values}});
        let trigger = Trigger::detect(event.to_string().as_bytes());
        assert_eq!(trigger.carrier.traceparent.len(), MAX_VALUES);
        assert_eq!(trigger.carrier.tracestate.len(), MAX_VALUES);
    }
}
