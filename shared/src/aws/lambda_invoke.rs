//! Lambda `Invoke` propagation: the `X-Amzn-Trace-Id` request header carries X-Ray's context (the
//! interceptor sets it on every request); W3C context goes into the invocation's client context,
//! `ClientContext.custom`, as OpenTelemetry's JavaScript instrumentation writes it, so that a called
//! function can continue a W3C caller's trace. A user's keys are never replaced, and the context is
//! added only while the encoded client context stays within Lambda's 3,583 bytes; a client context
//! that is not base64 JSON is left as it is.
//! [Invoke](https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#lambda-Invoke-request-ClientContext)
use super::{Span, attr, w3c_context};
use crate::OpenTelemetrySpanExt;
use aws_sdk_lambda::operation as op;
use aws_smithy_runtime_api::client::interceptors::context::Input;
use serde_json::{Map, Value};

/// The longest base64 `ClientContext` Lambda accepts.
pub(crate) const MAX_CLIENT_CONTEXT_BYTES: usize = 3_583;
/// `faas.invoked_provider` of Lambda.
const AWS: &str = "aws";

pub(super) fn record_and_inject(span: &Span, cx: &opentelemetry::Context, input: &mut Input) {
    let (function, client_context) =
        if let Some(input) = input.downcast_mut::<op::invoke::InvokeInput>() {
            (input.function_name.clone(), &mut input.client_context)
        } else if let Some(input) =
            input.downcast_mut::<op::invoke_with_response_stream::InvokeWithResponseStreamInput>()
        {
            (input.function_name.clone(), &mut input.client_context)
        } else {
            return;
        };
    span.set_attribute(attr::FAAS_INVOKED_PROVIDER, AWS);
    if let Some(function) = function {
        let (name, region) = function_name_and_region(&function);
        span.set_attribute(attr::FAAS_INVOKED_NAME, name.to_owned());
        if let Some(region) = region {
            span.set_attribute(attr::FAAS_INVOKED_REGION, region.to_owned());
        }
    }
    if let Some(encoded) = with_context(client_context.as_deref(), &w3c_context(cx)) {
        *client_context = Some(encoded);
    }
}

/// The function's name and, from an ARN, its region: `orders`, `orders:live`,
/// `123456789012:function:orders` or `arn:aws:lambda:us-east-1:123456789012:function:orders:live`.
fn function_name_and_region(function: &str) -> (&str, Option<&str>) {
    let parts: Vec<&str> = function.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", region, _, "function", name, ..] => (name, Some(region)),
        [_, "function", name, ..] => (name, None),
        [name, ..] => (name, None),
        [] => (function, None),
    }
}

/// The client context `current` (base64 JSON, or none) with the W3C keys of `w3c` added to its
/// `custom` map where free, as many as fit Lambda's bound, in order; `None` to leave it unchanged.
pub(crate) fn with_context(
    current: Option<&str>,
    w3c: &[(&'static str, String)],
) -> Option<String> {
    if w3c.is_empty() {
        return None;
    }
    let mut context = match current {
        None => Map::new(),
        Some(encoded) => {
            let decoded = aws_smithy_types::base64::decode(encoded).ok()?;
            match serde_json::from_slice::<Value>(&decoded).ok()? {
                Value::Object(context) => context,
                _ => return None,
            }
        }
    };
    let mut custom = match context.remove("custom") {
        None => Map::new(),
        Some(Value::Object(custom)) => custom,
        Some(_) => return None,
    };
    let mut encoded = None;
    for (key, value) in w3c {
        if custom.contains_key(*key) {
            continue;
        }
        custom.insert((*key).to_owned(), Value::String(value.clone()));
        context.insert("custom".to_owned(), Value::Object(custom.clone()));
        let candidate =
            aws_smithy_types::base64::encode(Value::Object(context.clone()).to_string());
        if candidate.len() > MAX_CLIENT_CONTEXT_BYTES {
            // Too long with this key: without it, and without the less important ones after it.
            break;
        }
        encoded = Some(candidate);
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(encoded: &str) -> Value {
        serde_json::from_slice(&aws_smithy_types::base64::decode(encoded).expect("base64"))
            .expect("JSON")
    }

    const TRACEPARENT: &str = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";

    #[test]
    fn the_context_joins_a_users_custom_keys_without_replacing_one() {
        let user = aws_smithy_types::base64::encode(
            r#"{"custom":{"tenant":"a","traceparent":"user's"},"env":{"locale":"fr"}}"#,
        );
        let w3c = [
            ("traceparent", TRACEPARENT.to_owned()),
            ("baggage", "k=v".to_owned()),
        ];
        let encoded = with_context(Some(&user), &w3c).expect("baggage added");
        let context = decode(&encoded);
        assert_eq!(context["custom"]["traceparent"], "user's", "never replaced");
        assert_eq!(context["custom"]["tenant"], "a");
        assert_eq!(context["custom"]["baggage"], "k=v");
        assert_eq!(context["env"]["locale"], "fr");
    }

    #[test]
    fn nothing_is_added_past_lambdas_bound_nor_to_what_is_not_a_client_context() {
        let w3c = [
            ("traceparent", TRACEPARENT.to_owned()),
            ("baggage", "b".repeat(3_000)),
        ];
        let encoded = with_context(None, &w3c).expect("traceparent fits");
        assert!(encoded.len() <= MAX_CLIENT_CONTEXT_BYTES);
        let context = decode(&encoded);
        assert_eq!(context["custom"]["traceparent"], TRACEPARENT);
        assert!(
            context["custom"].get("baggage").is_none(),
            "too long: left out"
        );

        let full = aws_smithy_types::base64::encode(format!(
            r#"{{"custom":{{"note":"{}"}}}}"#,
            "n".repeat(2_650)
        ));
        assert_eq!(with_context(Some(&full), &w3c), None, "no room: unchanged");
        assert_eq!(with_context(Some("not base64!"), &w3c), None);
        assert_eq!(
            with_context(Some(&aws_smithy_types::base64::encode("[1]")), &w3c),
            None,
            "not an object"
        );
    }

    #[test]
    fn function_names_and_arns_give_the_invoked_name() {
        let cases = [
            ("orders", ("orders", None)),
            ("orders:live", ("orders", None)),
            ("123456789012:function:orders", ("orders", None)),
            (
                "arn:aws:lambda:eu-west-1:123456789012:function:orders:live",
                ("orders", Some("eu-west-1")),
            ),
        ];
        for (function, expected) in cases {
            assert_eq!(function_name_and_region(function), expected, "{function}");
        }
    }
}
