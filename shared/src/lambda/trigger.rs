//! `faas.trigger` and the span name, from the shape of the event.
//!
//! The layer sees the raw event bytes before any handler type is known, so detection reads only the
//! few keys that tell event sources apart and ignores everything else (no payload is kept).
//! [Event shapes](https://docs.aws.amazon.com/lambda/latest/dg/lambda-services.html).

use serde::Deserialize;
use serde_json::value::RawValue;

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
}

#[derive(Deserialize)]
struct RequestContext<'a> {
    #[serde(borrow)]
    http: Option<HttpContext<'a>>,
    elb: Option<&'a RawValue>,
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
        };
        let Ok(probe) = serde_json::from_slice::<Probe<'_>>(event) else {
            return other;
        };
        let request_context = probe.request_context.as_ref();

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
            };
        }
        if let Some(method) = string(probe.http_method) {
            // ALB: no route template exists, only the (high-cardinality) path.
            let is_alb = request_context.is_some_and(|rc| rc.elb.is_some());
            return Trigger {
                kind: TriggerKind::Http,
                http_method: Some(method),
                http_route: if is_alb { None } else { string(probe.resource) },
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
}
