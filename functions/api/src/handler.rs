//! The orders API.
//!
//! - `POST /orders` with `{"customer": "...", "items": [{"sku": "...", "quantity": 1, "unit_price_cents": 250}]}`:
//!   validates the body (400 with the reason), has the payment provider authorize the total when
//!   `PAYMENTS_URL` is set (402 when it declines), writes the order to DynamoDB, stores a receipt in
//!   S3 and sends `order.created` to SQS; 201 with `{"id", "status", "total_cents"}`.
//! - `GET /orders/{id}`: the stored order, or 404.
//!
//! Nothing here traces by hand: the invocation span comes from `tracekit::run_http`, the DynamoDB, S3
//! and SQS spans from the clients `main` builds with `tracekit::aws`, the payment provider's from the
//! reqwest client it builds with `tracekit::http_client`, and the SQS message carries the trace to
//! the worker (the HTTP headers carry it to the provider). The one addition is the `validate order`
//! span, so that a rejected body shows in the trace as an error with its reason.
//!
//! Metrics (`tracekit::metrics`, CloudWatch embedded metric format lines written when the invocation
//! ends): `OrdersCreated` and `OrderValue` (in dollars) for each order created, `OrdersRejected`
//! for a body refused with 400, and `OrderErrors` for a request the API could not serve (storage,
//! queue, payment provider: the metric the stack's alarm watches).

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Request, Response, http::Method, http::StatusCode};
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};
use tracekit::OpenTelemetrySpanExt;
use tracekit::metrics::{self, Unit};

/// Most items one order may hold.
pub const MAX_ITEMS: usize = 100;
/// The SQS message type the worker consumes.
pub const ORDER_CREATED: &str = "order.created";

/// The clients and resource names, built once in `main`.
#[derive(Debug, Clone)]
pub struct App {
    /// Traced DynamoDB client.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Traced S3 client.
    pub s3: aws_sdk_s3::Client,
    /// Traced SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// `ORDERS_TABLE`.
    pub table: String,
    /// `RECEIPTS_BUCKET`.
    pub bucket: String,
    /// `ORDERS_QUEUE_URL`.
    pub queue_url: String,
    /// The payment provider, when `PAYMENTS_URL` is set.
    pub payments: Option<Payments>,
}

/// The payment provider that authorizes each order's total: `POST {url}/authorizations`.
#[derive(Debug, Clone)]
pub struct Payments {
    /// Traced reqwest client.
    pub client: tracekit::http_client::ClientWithMiddleware,
    /// `PAYMENTS_URL`, without a trailing `/`.
    pub url: String,
}

/// The authorization request's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authorization<'a> {
    /// The order id, also the request's `Idempotency-Key`.
    pub order_id: &'a str,
    /// The order's total.
    pub amount_cents: u64,
}

/// A new order, as POSTed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// Who ordered.
    pub customer: String,
    /// What, at least one line.
    pub items: Vec<Item>,
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Product code.
    pub sku: String,
    /// How many, at least 1.
    pub quantity: u32,
    /// Price of one, in cents.
    pub unit_price_cents: u64,
}

/// The receipt stored in S3 and read by the worker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Receipt {
    /// Order id.
    pub id: String,
    /// Who ordered.
    pub customer: String,
    /// Order lines.
    pub items: Vec<Item>,
    /// Sum of quantity × unit price.
    pub total_cents: u64,
}

/// The `order.created` message body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct OrderCreated {
    /// Always [`ORDER_CREATED`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The order id (the DynamoDB key).
    pub order_id: String,
    /// The receipt's S3 key.
    pub receipt_key: String,
}

/// Why a request failed. Each variant is answered as an HTTP status ([`handle`]); its
/// [`error_type`](ApiError::error_type) names it on spans and, were it ever returned to Lambda, in
/// the `errorType` Lambda is told.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body is not a valid order.
    #[error("{0}")]
    InvalidOrder(String),
    /// No such order.
    #[error("order {0} not found")]
    NotFound(String),
    /// No such route.
    #[error("no route for {method} {path}")]
    NoRoute {
        /// Request method.
        method: Method,
        /// Request path.
        path: String,
    },
    /// The payment provider declined the order (it answered 4xx).
    #[error("payment declined ({0})")]
    PaymentDeclined(StatusCode),
    /// The payment provider failed or could not be reached.
    #[error("the payment provider failed: {0}")]
    Payments(String),
    /// Storing the order or its receipt (DynamoDB, S3) failed.
    #[error("{operation} failed: {message}")]
    Storage {
        /// The operation, e.g. `DynamoDB.PutItem`.
        operation: &'static str,
        /// The SDK's description, with the error code.
        message: String,
    },
    /// Announcing the order on the queue (SQS) failed.
    #[error("{operation} failed: {message}")]
    Queue {
        /// The operation, e.g. `SQS.SendMessage`.
        operation: &'static str,
        /// The SDK's description, with the error code.
        message: String,
    },
}

impl ApiError {
    fn storage(operation: &'static str, error: impl std::error::Error) -> Self {
        ApiError::Storage {
            operation,
            message: aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string(),
        }
    }

    fn queue(operation: &'static str, error: impl std::error::Error) -> Self {
        ApiError::Queue {
            operation,
            message: aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
        }
    }

    /// The failure's stable, low-cardinality name: its spans' `error.type`, and the `errorType`
    /// Lambda is told.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::InvalidOrder(_) => "InvalidOrder",
            ApiError::NotFound(_) => "OrderNotFound",
            ApiError::NoRoute { .. } => "NoRoute",
            ApiError::PaymentDeclined(_) => "PaymentDeclined",
            ApiError::Payments(_) => "PaymentsFailed",
            ApiError::Storage { .. } => "StorageFailed",
            ApiError::Queue { .. } => "QueueFailed",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidOrder(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::PaymentDeclined(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::Storage { .. } | ApiError::Queue { .. } | ApiError::Payments(_) => {
                StatusCode::BAD_GATEWAY
            }
        }
    }
}

/// What Lambda is told of a failure: [`ApiError::error_type`] and the message, as
/// aws-lambda-rust-runtime's examples name their errors (the default would be the Rust type's path).
impl From<ApiError> for Diagnostic {
    fn from(error: ApiError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Parses and checks a POSTed body.
pub fn validate(body: &[u8]) -> Result<NewOrder, ApiError> {
    let order: NewOrder = serde_json::from_slice(body)
        .map_err(|error| ApiError::InvalidOrder(format!("the body is not an order: {error}")))?;
    if order.customer.trim().is_empty() {
        return Err(ApiError::InvalidOrder("customer must not be empty".into()));
    }
    if order.items.is_empty() || order.items.len() > MAX_ITEMS {
        return Err(ApiError::InvalidOrder(format!(
            "an order has 1 to {MAX_ITEMS} items, this one has {}",
            order.items.len()
        )));
    }
    if let Some(item) = order
        .items
        .iter()
        .find(|item| item.sku.trim().is_empty() || item.quantity == 0)
    {
        return Err(ApiError::InvalidOrder(format!(
            "every item needs a sku and a quantity of at least 1: {item:?}"
        )));
    }
    Ok(order)
}

/// Total in cents; `None` on overflow.
pub fn total_cents(items: &[Item]) -> Option<u64> {
    items.iter().try_fold(0u64, |total, item| {
        total.checked_add(u64::from(item.quantity).checked_mul(item.unit_price_cents)?)
    })
}

/// Routes one request. `order_id` names a new order (the Lambda request id in `main`).
pub async fn handle(app: &App, request: Request, order_id: &str) -> Response<Body> {
    let outcome = route(app, &request, order_id).await;
    let (status, body) = match outcome {
        Ok((status, body)) => (status, body),
        Err(error) => {
            match error {
                ApiError::Storage { .. } | ApiError::Queue { .. } | ApiError::Payments(_) => {
                    tracing::error!(%error, "request failed");
                    metrics::add_metric("OrderErrors", Unit::Count, 1.0);
                }
                ApiError::InvalidOrder(_) => {
                    metrics::add_metric("OrdersRejected", Unit::Count, 1.0)
                }
                _ => {}
            }
            (
                error.status(),
                serde_json::json!({ "error": error.to_string() }),
            )
        }
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

async fn route(
    app: &App,
    request: &Request,
    order_id: &str,
) -> Result<(StatusCode, serde_json::Value), ApiError> {
    let path = request.uri().path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (request.method(), segments.as_slice()) {
        (&Method::POST, ["orders"]) => create(app, request.body(), order_id).await,
        (&Method::GET, ["orders", id]) => get(app, id).await,
        (method, _) => Err(ApiError::NoRoute {
            method: method.clone(),
            path: path.to_owned(),
        }),
    }
}

async fn create(
    app: &App,
    body: &Body,
    order_id: &str,
) -> Result<(StatusCode, serde_json::Value), ApiError> {
    let span = tracing::info_span!("validate order");
    let order = match span.in_scope(|| validate(body.as_ref())) {
        Ok(order) => order,
        Err(error) => {
            span.set_status(tracekit::opentelemetry::trace::Status::error(
                error.to_string(),
            ));
            span.set_attribute("error.type", error.error_type());
            // The answer's status, so X-Ray reads the rejection as the client's error, not a fault.
            span.set_attribute("http.response.status_code", 400);
            span.in_scope(|| tracing::warn!(%error, "order rejected"));
            return Err(error);
        }
    };
    drop(span);
    let total = total_cents(&order.items)
        .ok_or_else(|| ApiError::InvalidOrder("the order total overflows".into()))?;
    if let Some(payments) = &app.payments {
        authorize(payments, order_id, total).await?;
    }
    let receipt_key = format!("receipts/{order_id}.json");
    let created_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();

    let items = serde_json::to_string(&order.items).unwrap_or_default();
    app.dynamodb
        .put_item()
        .table_name(&app.table)
        .item("id", AttributeValue::S(order_id.to_owned()))
        .item("customer", AttributeValue::S(order.customer.clone()))
        .item("items", AttributeValue::S(items))
        .item("total_cents", AttributeValue::N(total.to_string()))
        .item("status", AttributeValue::S("created".into()))
        .item("created_at", AttributeValue::N(created_at.to_string()))
        .item("receipt_key", AttributeValue::S(receipt_key.clone()))
        .condition_expression("attribute_not_exists(id)")
        .send()
        .await
        .map_err(|e| ApiError::storage("DynamoDB.PutItem", e))?;

    let receipt = Receipt {
        id: order_id.to_owned(),
        customer: order.customer,
        items: order.items,
        total_cents: total,
    };
    app.s3
        .put_object()
        .bucket(&app.bucket)
        .key(&receipt_key)
        .content_type("application/json")
        .body(serde_json::to_vec(&receipt).unwrap_or_default().into())
        .send()
        .await
        .map_err(|e| ApiError::storage("S3.PutObject", e))?;

    let message = OrderCreated {
        kind: ORDER_CREATED.to_owned(),
        order_id: order_id.to_owned(),
        receipt_key,
    };
    let event_type = aws_sdk_sqs::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value(ORDER_CREATED)
        .build()
        .map_err(|e| ApiError::queue("SQS.SendMessage", e))?;
    app.sqs
        .send_message()
        .queue_url(&app.queue_url)
        .message_body(serde_json::to_string(&message).unwrap_or_default())
        .message_attributes("event_type", event_type)
        .send()
        .await
        .map_err(|e| ApiError::queue("SQS.SendMessage", e))?;

    tracing::info!(order_id, total_cents = total, "order created");
    metrics::add_metric("OrdersCreated", Unit::Count, 1.0);
    metrics::add_metric("OrderValue", Unit::None, total as f64 / 100.0);
    Ok((
        StatusCode::CREATED,
        serde_json::json!({ "id": order_id, "status": "created", "total_cents": total }),
    ))
}

/// Has the payment provider authorize `amount_cents` for the order. The order id is the
/// `Idempotency-Key`: a retried invocation (same Lambda request id) authorizes once.
async fn authorize(payments: &Payments, order_id: &str, amount_cents: u64) -> Result<(), ApiError> {
    let body = serde_json::to_vec(&Authorization {
        order_id,
        amount_cents,
    })
    .map_err(|e| ApiError::Payments(e.to_string()))?;
    let response = payments
        .client
        .post(format!("{}/authorizations", payments.url))
        .header("content-type", "application/json")
        .header("idempotency-key", order_id)
        .body(body)
        .send()
        .await
        .map_err(|e| ApiError::Payments(e.to_string()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_client_error() {
        Err(ApiError::PaymentDeclined(status))
    } else {
        Err(ApiError::Payments(format!("it answered {status}")))
    }
}

async fn get(app: &App, id: &str) -> Result<(StatusCode, serde_json::Value), ApiError> {
    let output = app
        .dynamodb
        .get_item()
        .table_name(&app.table)
        .key("id", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| ApiError::storage("DynamoDB.GetItem", e))?;
    let item = output
        .item
        .ok_or_else(|| ApiError::NotFound(id.to_owned()))?;
    Ok((StatusCode::OK, order_json(&item)))
}

/// The stored order as the API shows it.
fn order_json(item: &HashMap<String, AttributeValue>) -> serde_json::Value {
    let string = |key: &str| item.get(key).and_then(|v| v.as_s().ok()).cloned();
    let number = |key: &str| {
        item.get(key)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let items: serde_json::Value = string("items")
        .and_then(|items| serde_json::from_str(&items).ok())
        .unwrap_or_default();
    serde_json::json!({
        "id": string("id"),
        "customer": string("customer"),
        "items": items,
        "total_cents": number("total_cents"),
        "status": string("status"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bodies_are_rejected_with_a_reason() {
        // (body, what the reason must mention)
        let cases: [(&str, &str); 7] = [
            ("", "not an order"),
            ("{not json", "not an order"),
            (r#"{"customer":"ada"}"#, "missing field `items`"),
            (
                r#"{"customer":" ","items":[{"sku":"a","quantity":1,"unit_price_cents":1}]}"#,
                "customer",
            ),
            (r#"{"customer":"ada","items":[]}"#, "1 to 100 items"),
            (
                r#"{"customer":"ada","items":[{"sku":"a","quantity":0,"unit_price_cents":1}]}"#,
                "quantity",
            ),
            (
                r#"{"customer":"ada","items":[],"admin":true}"#,
                "unknown field `admin`",
            ),
        ];
        for (body, reason) in cases {
            match validate(body.as_bytes()) {
                Err(ApiError::InvalidOrder(message)) => {
                    assert!(message.contains(reason), "{body:?}: {message}");
                }
                other => panic!("{body:?} should be rejected, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_good_body_is_an_order_with_its_total() {
        let body = r#"{"customer":"ada","items":[{"sku":"tea","quantity":3,"unit_price_cents":250},{"sku":"cup","quantity":1,"unit_price_cents":900}]}"#;
        let order = validate(body.as_bytes()).expect("valid");
        assert_eq!(order.customer, "ada");
        assert_eq!(total_cents(&order.items), Some(1650));
        let huge = Item {
            sku: "x".into(),
            quantity: u32::MAX,
            unit_price_cents: u64::MAX,
        };
        assert_eq!(
            total_cents(&[huge]),
            None,
            "overflow is caught, not wrapped"
        );
    }

    #[test]
    fn lambda_is_told_each_failures_own_name() {
        // (error, errorType, reason)
        let cases = [
            (
                ApiError::InvalidOrder("no items".into()),
                "InvalidOrder",
                "a bad body",
            ),
            (
                ApiError::NotFound("o-1".into()),
                "OrderNotFound",
                "an unknown order",
            ),
            (
                ApiError::NoRoute {
                    method: Method::PUT,
                    path: "/orders".into(),
                },
                "NoRoute",
                "an unknown route",
            ),
            (
                ApiError::PaymentDeclined(StatusCode::PAYMENT_REQUIRED),
                "PaymentDeclined",
                "the provider said no",
            ),
            (
                ApiError::Payments("timeout".into()),
                "PaymentsFailed",
                "the provider failed",
            ),
            (
                ApiError::Storage {
                    operation: "DynamoDB.PutItem",
                    message: "throttled".into(),
                },
                "StorageFailed",
                "DynamoDB or S3 failed",
            ),
            (
                ApiError::Queue {
                    operation: "SQS.SendMessage",
                    message: "no such queue".into(),
                },
                "QueueFailed",
                "SQS failed",
            ),
        ];
        for (error, error_type, reason) in cases {
            let message = error.to_string();
            let diagnostic = Diagnostic::from(error);
            assert_eq!(diagnostic.error_type, error_type, "{reason}");
            assert_eq!(
                diagnostic.error_message, message,
                "{reason}: the Display text"
            );
        }
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(
            ApiError::InvalidOrder("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::NotFound("1".into()).status(),
            StatusCode::NOT_FOUND
        );
        let aws = ApiError::Storage {
            operation: "S3.PutObject",
            message: "AccessDenied".into(),
        };
        assert_eq!(aws.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            ApiError::PaymentDeclined(StatusCode::PAYMENT_REQUIRED).status(),
            StatusCode::PAYMENT_REQUIRED
        );
        assert_eq!(
            ApiError::Payments("timeout".into()).status(),
            StatusCode::BAD_GATEWAY
        );
    }
}
