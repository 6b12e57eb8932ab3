//! X-Ray metadata: values of any shape kept on a span under a namespace, shown with the trace but
//! not indexed (annotations are what X-Ray searches: see [`annotate`](crate::annotate)).
//!
//! Set with [`metadata`] (any `serde::Serialize` value), or as a `tracing` field named
//! `metadata.<namespace>.<key>` (a plain value: string, number, bool):
//!
//! ```
//! let span = tracing::info_span!("charge", metadata.payment.provider = "stripe");
//! ```
//!
//! On the span they are attributes: `metadata.<namespace>.<key>` for a field, and
//! `metadata_json.<namespace>.<key>` holding the JSON text for a value set by [`metadata`]. Each
//! export path gets them as its X-Ray translator reads metadata:
//! - the agent (OTLP over UDP), OTLP/HTTP(S) and X-Ray's OTLP endpoint: one attribute
//!   `aws.xray.metadata.<namespace>` per namespace, holding the namespace's JSON object, the
//!   convention the ADOT collector's `awsxray` exporter reads (`default` merges into the
//!   segment's default namespace);
//! - X-Ray segment documents: `"metadata": {"<namespace>": {...}}` in the document itself.
//!   opentelemetry-aws's translator keeps metadata flat (`metadata.<key>` → a value), so tracekit
//!   hands it one attribute per namespace and nests the JSON into the document before it is sent.
//!
//! A namespace holds letters, digits, `_` and `-` (a `.` becomes `_`, with one warning: X-Ray
//! reserves `AWS.`); keys are any non-empty string.
//! [Segment documents: metadata](https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html#api-segmentdocuments-metadata)

use crate::OpenTelemetrySpanExt;
use opentelemetry::{Array, Key, KeyValue, Value};
#[cfg(any(feature = "xray", test))]
use opentelemetry_sdk::trace::SpanData;
use serde_json::{Map, Value as Json};
use std::borrow::Cow;

/// The prefix of a metadata field: `metadata.<namespace>.<key>`.
pub const METADATA_PREFIX: &str = "metadata.";
/// The prefix under which [`metadata`] keeps a value's JSON text.
const METADATA_JSON_PREFIX: &str = "metadata_json.";
/// The OTLP paths' attribute for a namespace's JSON object (the `awsxray` exporter's).
const AWS_XRAY_METADATA_PREFIX: &str = "aws.xray.metadata.";
/// Marks, on the segment path, the attribute that holds a namespace's JSON object; a character no
/// namespace holds, so no attribute of the user's is taken for one.
pub(crate) const SEGMENT_NAMESPACE_MARK: char = '\u{1e}';

/// Keeps `value` as X-Ray metadata of the current span (the invocation's, or the one the handler
/// entered), under `namespace` and `key`. A value that does not serialize is left out, with a
/// warning, as are an empty namespace or key.
///
/// ```no_run
/// #[derive(serde::Serialize)]
/// struct Basket { items: u32, total_cents: u64 }
///
/// tracekit::metadata("orders", "basket", &Basket { items: 3, total_cents: 4_200 });
/// tracekit::metadata("orders", "coupon", "SPRING");
/// ```
pub fn metadata(namespace: &str, key: &str, value: &(impl serde::Serialize + ?Sized)) {
    let Some(namespace) = valid_namespace(namespace) else {
        tracing::warn!(target: "tracekit", key, "metadata refused: the namespace is empty");
        return;
    };
    if key.is_empty() {
        tracing::warn!(target: "tracekit", %namespace, "metadata refused: the key is empty");
        return;
    }
    match serde_json::to_string(value) {
        Ok(json) => tracing::Span::current()
            .set_attribute(format!("{METADATA_JSON_PREFIX}{namespace}.{key}"), json),
        Err(error) => {
            tracing::warn!(target: "tracekit", %namespace, key, %error, "metadata left out: the value does not serialize")
        }
    }
}

/// The metadata namespace of the service `service` (its name, dots made `_`, quietly).
pub(crate) fn namespace_of(service: &str) -> String {
    service
        .chars()
        .map(|c| {
            if c == '.' || c == SEGMENT_NAMESPACE_MARK {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Keeps `value` under `namespace`/`key` of the current span as [`metadata`] does, its JSON cut to
/// `max_bytes`: a value that does not fit is kept as `{"truncated": true, "bytes": <its size>,
/// "json": "<the first max_bytes of its JSON>"}`, so that what is kept is still JSON and says it was
/// cut. For the handler's response and error (`TRACEKIT_CAPTURE_*`).
pub(crate) fn capture(
    namespace: &str,
    key: &str,
    value: &(impl serde::Serialize + ?Sized),
    max_bytes: usize,
) {
    let Ok(json) = serde_json::to_string(value) else {
        return;
    };
    keep(namespace, key, json, max_bytes);
}

/// Response headers whose values are credentials (compared without regard to case). A captured
/// response keeps their names, with the value [`REDACTED`](crate::redaction::REDACTED).
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-amz-security-token",
];

/// [`capture`] of the handler's response as `response`, with the values of its credential headers
/// ([`CREDENTIAL_HEADERS`]) redacted: in `headers` and `multiValueHeaders`, as API Gateway, ALB and
/// lambda_http's responses carry them, and every entry of `cookies` (the `Set-Cookie` values of an
/// HTTP API or function URL response).
pub(crate) fn capture_response(
    namespace: &str,
    value: &(impl serde::Serialize + ?Sized),
    max_bytes: usize,
) {
    let Ok(mut json) = serde_json::to_value(value) else {
        return;
    };
    redact_credentials(&mut json);
    keep(namespace, "response", json.to_string(), max_bytes);
}

/// Replaces, in an HTTP-shaped response, the values of the headers that carry credentials.
fn redact_credentials(response: &mut Json) {
    let Json::Object(response) = response else {
        return;
    };
    for field in ["headers", "multiValueHeaders"] {
        if let Some(Json::Object(headers)) = response.get_mut(field) {
            for (name, value) in headers.iter_mut() {
                if CREDENTIAL_HEADERS
                    .iter()
                    .any(|credential| name.eq_ignore_ascii_case(credential))
                {
                    redact(value);
                }
            }
        }
    }
    if response.contains_key("statusCode")
        && let Some(cookies) = response.get_mut("cookies")
    {
        redact(cookies);
    }
}

/// `value` made [`REDACTED`](crate::redaction::REDACTED); a list keeps its length.
fn redact(value: &mut Json) {
    match value {
        Json::Array(values) => values.iter_mut().for_each(redact),
        Json::Null => {}
        other => *other = Json::String(crate::redaction::REDACTED.to_owned()),
    }
}

/// Keeps `json` under `namespace`/`key` of the current span, cut to `max_bytes` (see [`capture`]).
fn keep(namespace: &str, key: &str, json: String, max_bytes: usize) {
    let kept = if json.len() <= max_bytes {
        json
    } else {
        let mut end = max_bytes;
        while !json.is_char_boundary(end) {
            end -= 1;
        }
        serde_json::json!({"truncated": true, "bytes": json.len(), "json": &json[..end]})
            .to_string()
    };
    tracing::Span::current()
        .set_attribute(format!("{METADATA_JSON_PREFIX}{namespace}.{key}"), kept);
}

/// `namespace` with each `.` replaced by `_` (with a warning); `None` when empty.
fn valid_namespace(namespace: &str) -> Option<Cow<'_, str>> {
    if namespace.is_empty() {
        return None;
    }
    if !namespace.contains('.') && !namespace.contains(SEGMENT_NAMESPACE_MARK) {
        return Some(Cow::Borrowed(namespace));
    }
    let valid = namespace_of(namespace);
    tracing::warn!(target: "tracekit", namespace, changed = %valid, "metadata namespace changed: X-Ray namespaces hold no `.`");
    Some(Cow::Owned(valid))
}

/// The span's metadata, one JSON object per namespace, in the order the namespaces first appear;
/// the attributes it came from are taken out of the span.
fn take_namespaces(attributes: &mut Vec<KeyValue>) -> Vec<(String, Map<String, Json>)> {
    let mut namespaces: Vec<(String, Map<String, Json>)> = Vec::new();
    attributes.retain(|attribute| {
        let name = attribute.key.as_str();
        let (rest, json) = if let Some(rest) = name.strip_prefix(METADATA_JSON_PREFIX) {
            (rest, true)
        } else if let Some(rest) = name.strip_prefix(METADATA_PREFIX) {
            (rest, false)
        } else {
            return true;
        };
        let Some((namespace, key)) = rest
            .split_once('.')
            .filter(|(n, k)| !n.is_empty() && !k.is_empty())
        else {
            return true;
        };
        let value = if json {
            match &attribute.value {
                // Written by `metadata` from `serde_json::to_string`, so it parses; kept as text if not.
                Value::String(text) => serde_json::from_str(text.as_str())
                    .unwrap_or_else(|_| Json::String(text.as_str().to_owned())),
                other => plain(other),
            }
        } else {
            plain(&attribute.value)
        };
        let namespace = namespace_of(namespace);
        let index = match namespaces.iter().position(|(known, _)| *known == namespace) {
            Some(index) => index,
            None => {
                namespaces.push((namespace, Map::new()));
                namespaces.len() - 1
            }
        };
        namespaces[index].1.insert(key.to_owned(), value);
        false
    });
    namespaces
}

/// An attribute value as JSON.
fn plain(value: &Value) -> Json {
    match value {
        Value::Bool(flag) => Json::Bool(*flag),
        Value::I64(number) => Json::from(*number),
        Value::F64(number) => {
            serde_json::Number::from_f64(*number).map_or(Json::Null, Json::Number)
        }
        Value::String(text) => Json::String(text.as_str().to_owned()),
        Value::Array(Array::Bool(items)) => items.iter().copied().map(Json::Bool).collect(),
        Value::Array(Array::I64(items)) => items.iter().copied().map(Json::from).collect(),
        Value::Array(Array::F64(items)) => items
            .iter()
            .map(|number| plain(&Value::F64(*number)))
            .collect(),
        Value::Array(Array::String(items)) => items
            .iter()
            .map(|text| Json::String(text.as_str().to_owned()))
            .collect(),
        _ => Json::String(value.to_string()),
    }
}

/// The OTLP paths: each namespace as `aws.xray.metadata.<namespace>`, its JSON object as text.
pub(crate) fn for_otlp(attributes: &mut Vec<KeyValue>) {
    if !has_metadata(attributes) {
        return;
    }
    for (namespace, object) in take_namespaces(attributes) {
        attributes.push(KeyValue::new(
            Key::from(format!("{AWS_XRAY_METADATA_PREFIX}{namespace}")),
            Json::Object(object).to_string(),
        ));
    }
}

#[cfg(feature = "xray")]
/// The segment path: each namespace as one `metadata.` attribute (which opentelemetry-aws's
/// translator copies into the document's metadata), named with [`SEGMENT_NAMESPACE_MARK`] so that
/// [`nest_namespaces`] finds it in the document.
pub(crate) fn for_segments(span: &mut SpanData) {
    if !has_metadata(&span.attributes) {
        return;
    }
    for (namespace, object) in take_namespaces(&mut span.attributes) {
        span.attributes.push(KeyValue::new(
            Key::from(format!(
                "{METADATA_PREFIX}{SEGMENT_NAMESPACE_MARK}{namespace}"
            )),
            Json::Object(object).to_string(),
        ));
    }
}

fn has_metadata(attributes: &[KeyValue]) -> bool {
    attributes.iter().any(|kv| {
        let name = kv.key.as_str();
        name.starts_with(METADATA_PREFIX) || name.starts_with(METADATA_JSON_PREFIX)
    })
}

#[cfg(feature = "xray")]
/// In a segment document translated from spans [`for_segments`] prepared: each marked metadata
/// entry's JSON object nested under its namespace, as X-Ray's document format has it. Other
/// metadata is left as it is.
pub(crate) fn nest_namespaces(document: &mut Json) {
    let Some(metadata) = document.get_mut("metadata").and_then(Json::as_object_mut) else {
        return;
    };
    let marked: Vec<String> = metadata
        .keys()
        .filter(|key| key.starts_with(SEGMENT_NAMESPACE_MARK))
        .cloned()
        .collect();
    for key in marked {
        let Some(Json::String(text)) = metadata.remove(&key) else {
            continue;
        };
        let namespace = key.trim_start_matches(SEGMENT_NAMESPACE_MARK).to_owned();
        let Ok(Json::Object(object)) = serde_json::from_str::<Json>(&text) else {
            continue;
        };
        match metadata.get_mut(&namespace) {
            Some(Json::Object(existing)) => existing.extend(object),
            _ => {
                metadata.insert(namespace, Json::Object(object));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(attributes: Vec<KeyValue>) -> SpanData {
        crate::test_spans::span(1, attributes)
    }

    fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    fn json_of(span: &SpanData, key: &str) -> Json {
        match attribute(span, key) {
            Some(Value::String(text)) => serde_json::from_str(text.as_str()).expect("JSON text"),
            other => panic!("{key}: {other:?}"),
        }
    }

    /// A captured response keeps its credential headers' names, never their values, in every shape
    /// an HTTP response takes on its way to Lambda.
    #[test]
    fn credential_headers_of_a_captured_response_are_redacted() {
        use serde_json::json;
        // (response, as captured, reason)
        let cases = [
            (
                json!({"statusCode": 200, "headers": {"Authorization": "Bearer t0k", "Content-Type": "text/plain"}, "body": "ok"}),
                json!({"statusCode": 200, "headers": {"Authorization": "REDACTED", "Content-Type": "text/plain"}, "body": "ok"}),
                "an API Gateway response built by hand: only the credential",
            ),
            (
                json!({"statusCode": 200, "headers": {"authorization": "Bearer t0k", "SET-COOKIE": "s=1", "cookie": "c=2", "X-Amz-Security-Token": "IQo", "proxy-authorization": "Basic eA=="}}),
                json!({"statusCode": 200, "headers": {"authorization": "REDACTED", "SET-COOKIE": "REDACTED", "cookie": "REDACTED", "X-Amz-Security-Token": "REDACTED", "proxy-authorization": "REDACTED"}}),
                "names in any case",
            ),
            (
                json!({"statusCode": 200, "headers": {}, "multiValueHeaders": {"set-cookie": ["a=1", "b=2"], "authorization": ["Bearer t0k"], "vary": ["origin"]}, "isBase64Encoded": false}),
                json!({"statusCode": 200, "headers": {}, "multiValueHeaders": {"set-cookie": ["REDACTED", "REDACTED"], "authorization": ["REDACTED"], "vary": ["origin"]}, "isBase64Encoded": false}),
                "API Gateway REST and ALB multi-value headers, as lambda_http writes them",
            ),
            (
                json!({"statusCode": 200, "headers": {"content-type": "text/plain"}, "multiValueHeaders": {}, "cookies": ["session=1; HttpOnly", "theme=dark"], "isBase64Encoded": false}),
                json!({"statusCode": 200, "headers": {"content-type": "text/plain"}, "multiValueHeaders": {}, "cookies": ["REDACTED", "REDACTED"], "isBase64Encoded": false}),
                "an HTTP API or function URL response: Set-Cookie values in `cookies`",
            ),
            (
                json!({"ok": true, "cookies": ["oatmeal"], "authorization": "granted"}),
                json!({"ok": true, "cookies": ["oatmeal"], "authorization": "granted"}),
                "a response that is not HTTP-shaped is the handler's own data",
            ),
            (
                json!({"statusCode": 200, "headers": "authorization"}),
                json!({"statusCode": 200, "headers": "authorization"}),
                "headers that are not a map hold no header",
            ),
            (
                json!("authorization"),
                json!("authorization"),
                "not an object",
            ),
        ];
        for (mut response, expected, reason) in cases {
            redact_credentials(&mut response);
            assert_eq!(response, expected, "{reason}");
        }
    }

    #[test]
    fn namespaces_become_one_json_object_each_on_the_otlp_paths() {
        let mut data = span(vec![
            KeyValue::new("faas.trigger", "http"),
            KeyValue::new(
                "metadata_json.orders.basket",
                r#"{"items":3,"total_cents":4200}"#,
            ),
            KeyValue::new("metadata.orders.coupon", "SPRING"),
            KeyValue::new("metadata.payment.retries", 2),
            KeyValue::new(
                "metadata.payment.tags",
                Value::Array(Array::String(vec!["a".into()])),
            ),
            KeyValue::new("metadata.no_key", true),
        ]);
        for_otlp(&mut data.attributes);
        assert_eq!(
            json_of(&data, "aws.xray.metadata.orders"),
            serde_json::json!({"basket": {"items": 3, "total_cents": 4200}, "coupon": "SPRING"})
        );
        assert_eq!(
            json_of(&data, "aws.xray.metadata.payment")["retries"],
            serde_json::json!(2)
        );
        assert!(
            attribute(&data, "metadata.orders.coupon").is_none(),
            "rewritten, not doubled"
        );
        assert!(
            attribute(&data, "metadata.no_key").is_some(),
            "a field with no key is no metadata: left as it is"
        );
        assert!(attribute(&data, "faas.trigger").is_some());
    }

    #[cfg(feature = "xray")]
    #[test]
    fn segment_documents_get_namespaces_nested() {
        let mut data = span(vec![
            KeyValue::new("metadata_json.orders.basket", r#"{"items":3}"#),
            KeyValue::new("metadata.orders.coupon", "SPRING"),
        ]);
        for_segments(&mut data);
        let key = format!("metadata.{SEGMENT_NAMESPACE_MARK}orders");
        let text = match attribute(&data, &key) {
            Some(Value::String(text)) => text.as_str().to_owned(),
            other => panic!("{other:?}"),
        };
        // What opentelemetry-aws's translator makes of it: the prefix stripped, the text kept.
        let mut document = serde_json::json!({
            "name": "orders",
            "metadata": {format!("{SEGMENT_NAMESPACE_MARK}orders"): text, "debug": "kept"}
        });
        nest_namespaces(&mut document);
        assert_eq!(
            document["metadata"],
            serde_json::json!({"orders": {"basket": {"items": 3}, "coupon": "SPRING"}, "debug": "kept"})
        );
    }

    #[test]
    fn a_span_without_metadata_is_left_alone() {
        let mut data = span(vec![KeyValue::new("faas.coldstart", true)]);
        for_otlp(&mut data.attributes);
        #[cfg(feature = "xray")]
        for_segments(&mut data);
        assert_eq!(data.attributes.len(), 1);
    }

    #[test]
    fn namespaces_lose_their_dots() {
        let cases = [
            ("orders", Some("orders"), "valid as it is"),
            ("com.example", Some("com_example"), "a dot"),
            ("", None, "empty"),
        ];
        for (namespace, expected, reason) in cases {
            assert_eq!(valid_namespace(namespace).as_deref(), expected, "{reason}");
        }
    }
}
