//! OTLP over HTTPS, and X-Ray's OTLP endpoint: real function processes export to the harness's
//! HTTPS receiver (a certificate from a CA made at test time, trusted through
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`), which recomputes every SigV4 signature with `aws-sigv4` and
//! refuses a mismatch, an unknown or expired key. Credentials come the way they do in a container or
//! a Managed Instances environment: from a credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`),
//! through the AWS SDK's default chain (`traced-function` is built with `sigv4-chain`); or as
//! Lambda gives them, in the environment, where the chain is never asked.
//!
//! Every case checks the handler's answer, the time spent after answering (within the flush bound),
//! one warning per failed flush, and that no log line holds a secret key, a session token or a
//! signature.

use integration_tests::otlp::Mode;
use integration_tests::{
    Auth, CredentialStore, CredentialsServer, FunctionProcess, Invocation, InvocationOutcome,
    OtlpReceiver, TestCa, TestCredentials, TlsOptions, stack, xray,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const REGION: &str = "us-east-1";
const FLUSH_TIMEOUT: Duration = Duration::from_millis(1_000);
/// What this shared two-core machine may add to a measured turnaround (scheduling, the harness).
const SLACK: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(20);
/// Short enough that tracekit fetches them again at every flush (it refreshes five minutes early).
const SHORT_LIFETIME: Duration = Duration::from_secs(4 * 60);

/// An HTTPS receiver that checks SigV4 for `xray` in [`REGION`], the credentials it trusts, and the
/// endpoint that hands them out.
struct Signed {
    ca: Arc<TestCa>,
    receiver: OtlpReceiver,
    store: CredentialStore,
    credentials: CredentialsServer,
}

impl Signed {
    fn start(names: &[&str]) -> Signed {
        let ca = Arc::new(TestCa::new().expect("CA"));
        let store = CredentialStore::new();
        let receiver = OtlpReceiver::start_tls(
            TlsOptions::new(&ca)
                .names(names.iter().map(|name| (*name).to_owned()))
                .auth(Auth::sigv4(REGION, &store)),
        )
        .expect("HTTPS receiver");
        let credentials = CredentialsServer::start(store.clone()).expect("credentials server");
        Signed {
            ca,
            receiver,
            store,
            credentials,
        }
    }

    /// The function's environment: X-Ray's OTLP endpoint (declared, since the host is 127.0.0.1),
    /// the test CA, and no credentials but the container endpoint's.
    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let pem = self.ca.pem_file().expect("CA file");
        let mut env: Vec<(String, String)> = [
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                self.receiver.traces_url(),
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", pem.display().to_string()),
            ("TRACEKIT_OTLP_XRAY_REGION", REGION.to_owned()),
            (
                "TRACEKIT_FLUSH_TIMEOUT_MS",
                FLUSH_TIMEOUT.as_millis().to_string(),
            ),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", self.credentials.url()),
            // The harness's own (the local stack's) must not be the ones found first.
            ("AWS_ACCESS_KEY_ID", String::new()),
            ("AWS_SECRET_ACCESS_KEY", String::new()),
            ("AWS_SESSION_TOKEN", String::new()),
            ("AWS_PROFILE", String::new()),
            ("AWS_CONFIG_FILE", "/nonexistent/tracekit-config".to_owned()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/tracekit-credentials".to_owned(),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        env.extend(
            extra
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
        );
        env
    }
}

fn spawn(env: &[(String, String)]) -> FunctionProcess {
    FunctionProcess::spawn(&stack::function_binary("traced-function"), env).expect("spawn")
}

fn lines_with(function: &FunctionProcess, text: &str) -> Vec<String> {
    function
        .stdout()
        .into_iter()
        .chain(function.stderr())
        .filter(|line| line.contains(text))
        .collect()
}

/// Invokes once with `payload`, checks the handler's answer and the time spent after it.
async fn invoke(function: &FunctionProcess, payload: Value, what: &str) {
    let timed = function
        .invoke_timed(Invocation::json(payload).trace_header(xray::new_trace_header()))
        .await
        .expect("invocation");
    let InvocationOutcome::Response(body) = &timed.outcome else {
        panic!("{what}: the handler's answer is lost: {:?}", timed.outcome);
    };
    let answer: Value = serde_json::from_slice(body).expect("JSON");
    assert_eq!(answer["ok"], true, "{what}: {answer}");
    let turnaround = timed.turnaround().await.expect("next poll");
    assert!(
        turnaround < FLUSH_TIMEOUT + SLACK,
        "{what}: {turnaround:?} after answering, bound {FLUSH_TIMEOUT:?}"
    );
}

/// No log line holds a secret of these credentials, a signature or an API key.
fn assert_nothing_secret(function: &FunctionProcess, secrets: &[&str], what: &str) {
    for line in function.stdout().iter().chain(function.stderr().iter()) {
        for secret in secrets {
            assert!(
                !line.contains(secret),
                "{what}: a log line holds a secret: {line}"
            );
        }
        assert!(
            !line.contains("Signature=") && !line.contains("AWS4-HMAC-SHA256"),
            "{what}: a log line holds a signature: {line}"
        );
    }
}

fn secrets(credentials: &TestCredentials) -> [&str; 2] {
    [
        credentials.secret_access_key.as_str(),
        credentials.session_token.as_str(),
    ]
}

async fn wait_for_warnings(function: &FunctionProcess, count: usize) {
    function
        .wait_for_stdout(
            |_| lines_with(function, "span export failed").len() >= count,
            WAIT,
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{count} export warnings: {:?} {:?}",
                function.stdout(),
                function.stderr()
            )
        });
}

/// Both encodings, with and without gzip, reach the receiver signed, over TLS, whole.
#[tokio::test]
async fn signed_spans_reach_an_https_endpoint_in_every_encoding() {
    let cases = [
        ("http/protobuf", "none", "application/x-protobuf", None),
        (
            "http/protobuf",
            "gzip",
            "application/x-protobuf",
            Some("gzip"),
        ),
        ("http/json", "none", "application/json", None),
        ("http/json", "gzip", "application/json", Some("gzip")),
    ];
    for (protocol, compression, content_type, encoding) in cases {
        let what = format!("{protocol}, {compression}");
        let signed = Signed::start(&["127.0.0.1"]);
        let credentials = signed.store.issue(SHORT_LIFETIME);
        let function = spawn(&signed.env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", compression),
        ]));
        invoke(&function, json!({"children": 3}), &what).await;
        let spans = signed
            .receiver
            .wait_for_spans(4, WAIT)
            .await
            .unwrap_or_else(|error| panic!("{what}: {error}; {:?}", function.stdout()));
        assert_eq!(spans.len(), 4, "{what}");
        assert!(
            spans.iter().any(|span| span.name == "step"),
            "{what}: {spans:?}"
        );
        let requests = signed.receiver.requests();
        assert_eq!(requests.len(), 1, "{what}: {requests:?}");
        let request = &requests[0];
        assert!(
            request.accepted,
            "{what}: {:?}",
            signed.receiver.rejections()
        );
        assert_eq!(
            request.authorization.as_deref(),
            Some("AWS4-HMAC-SHA256"),
            "{what}"
        );
        assert_eq!(request.content_type, content_type, "{what}");
        assert_eq!(request.content_encoding.as_deref(), encoding, "{what}");
        if encoding.is_some() {
            assert!(
                request.body_bytes < request.uncompressed_bytes,
                "{what}: {request:?}"
            );
        }
        assert!(
            lines_with(&function, "span export failed").is_empty(),
            "{what}"
        );
        assert_nothing_secret(&function, &secrets(&credentials), &what);
    }
}

/// Lambda's own credentials, in the environment, sign without the SDK's chain: the container
/// endpoint the chain would otherwise ask is never asked. The session token is read as the SDK
/// reads it, trimmed.
#[tokio::test]
async fn lambdas_environment_credentials_sign_without_the_sdk_chain() {
    let signed = Signed::start(&["127.0.0.1"]);
    let credentials = signed.store.issue(SHORT_LIFETIME);
    let token = format!(" {} ", credentials.session_token);
    let function = spawn(&signed.env(&[
        ("AWS_ACCESS_KEY_ID", credentials.access_key_id.as_str()),
        (
            "AWS_SECRET_ACCESS_KEY",
            credentials.secret_access_key.as_str(),
        ),
        ("AWS_SESSION_TOKEN", token.as_str()),
    ]));
    for what in ["first flush", "second flush"] {
        invoke(&function, json!({"children": 1}), what).await;
    }
    let spans = signed
        .receiver
        .wait_for_spans(4, WAIT)
        .await
        .unwrap_or_else(|error| panic!("{error}; {:?}", function.stdout()));
    assert_eq!(spans.len(), 4);
    let requests = signed.receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests.iter().all(|request| request.accepted),
        "{:?}",
        signed.receiver.rejections()
    );
    assert_eq!(
        signed.credentials.requests(),
        0,
        "the container endpoint is not asked when the environment holds credentials"
    );
    assert!(lines_with(&function, "span export failed").is_empty());
    assert_nothing_secret(&function, &secrets(&credentials), "environment credentials");
}

/// Credentials the receiver no longer trusts fail that flush alone; the ones issued next are
/// picked up by the next flush; long-lived ones are not fetched again at every flush.
#[tokio::test]
async fn refreshed_credentials_are_picked_up_and_expired_ones_refused() {
    let signed = Signed::start(&["127.0.0.1"]);
    let expired = signed.store.issue(Duration::ZERO);
    let function = spawn(&signed.env(&[]));
    function.init_duration().await.expect("init");
    assert_eq!(signed.receiver.connections(), 0, "init opens no connection");

    invoke(&function, json!({"children": 1}), "expired credentials").await;
    wait_for_warnings(&function, 1).await;
    let warning = lines_with(&function, "span export failed").remove(0);
    assert!(
        warning.contains("403"),
        "the refusal is reported: {warning}"
    );
    assert!(
        signed
            .receiver
            .rejections()
            .iter()
            .any(|reason| reason.contains("expired")),
        "{:?}",
        signed.receiver.rejections()
    );

    let first = signed.store.issue(SHORT_LIFETIME);
    invoke(&function, json!({"children": 1}), "fresh credentials").await;
    signed
        .receiver
        .wait_for_spans(2, WAIT)
        .await
        .expect("the next flush signs with the fresh credentials");

    // Rotated: the old key is revoked, the endpoint hands out the new one.
    signed.store.revoke(&first.access_key_id);
    let second = signed.store.issue(SHORT_LIFETIME);
    invoke(&function, json!({"children": 1}), "rotated credentials").await;
    signed
        .receiver
        .wait_for_spans(4, WAIT)
        .await
        .expect("the flush after the rotation signs with the new key");

    // An hour's credentials are kept: two more flushes, one fetch.
    signed.store.revoke(&second.access_key_id);
    let long = signed.store.issue(Duration::from_secs(3600));
    invoke(&function, json!({"children": 1}), "long-lived credentials").await;
    signed
        .receiver
        .wait_for_spans(6, WAIT)
        .await
        .expect("spans");
    let fetches = signed.credentials.requests();
    invoke(&function, json!({"children": 1}), "cached credentials").await;
    signed
        .receiver
        .wait_for_spans(8, WAIT)
        .await
        .expect("spans");
    assert_eq!(
        signed.credentials.requests(),
        fetches,
        "credentials an hour from expiry are not fetched again"
    );

    assert_eq!(
        lines_with(&function, "span export failed").len(),
        1,
        "only the expired credentials' flush failed"
    );
    assert_eq!(
        signed.receiver.connections(),
        1,
        "five flushes, one TLS connection, opened by the first"
    );
    for credentials in [&expired, &first, &second, &long] {
        assert_nothing_secret(&function, &secrets(credentials), "rotation");
    }
}

/// 25,000 spans in one flush arrive whole, in requests of at most 10,000 spans; 10,000 spans of
/// 600 bytes (6 MB) are split by size; a span over 200 KB is dropped and counted.
#[tokio::test]
async fn one_large_flush_is_split_to_the_endpoints_limits() {
    let signed = Signed::start(&["127.0.0.1"]);
    let credentials = signed.store.issue(SHORT_LIFETIME);
    let function = spawn(&signed.env(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "30000"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "30000"),
        ("TRACEKIT_FLUSH_TIMEOUT_MS", "60000"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000"),
    ]));
    let big = |payload: Value| {
        Invocation::json(payload)
            .trace_header(xray::new_trace_header())
            .deadline(SystemTime::now() + Duration::from_secs(120))
    };
    let outcome = function
        .invoke(big(
            json!({"children": 25_000, "padding": 200, "quiet": true, "oversized": 250_000}),
        ))
        .await
        .expect("invocation");
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
    let spans = signed
        .receiver
        .wait_for_spans(25_001, Duration::from_secs(90))
        .await
        .expect("every span");
    assert_eq!(spans.len(), 25_001, "25,000 steps and the invocation");
    assert!(spans.iter().all(|span| span.name != "oversized"));
    wait_for_warnings(&function, 1).await;
    let warning = lines_with(&function, "span export failed").remove(0);
    assert!(
        warning.contains("1 span(s) over") && warning.contains("\"dropped\":1"),
        "the oversized span is counted: {warning}"
    );
    let by_count = signed.receiver.requests();
    assert!(by_count.len() >= 3, "{} requests", by_count.len());

    let outcome = function
        .invoke(big(
            json!({"children": 10_000, "padding": 600, "quiet": true}),
        ))
        .await
        .expect("invocation");
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
    signed
        .receiver
        .wait_for_spans(25_001 + 10_001, Duration::from_secs(90))
        .await
        .expect("every span");
    let requests = signed.receiver.requests();
    let by_size = &requests[by_count.len()..];
    assert!(
        by_size.len() >= 2,
        "6 MB of spans cannot go in one request: {by_size:?}"
    );
    for request in &requests {
        assert!(request.accepted, "{request:?}");
        assert!(request.spans <= 10_000, "{} spans", request.spans);
        assert!(
            request.uncompressed_bytes <= 5_000_000,
            "{} bytes",
            request.uncompressed_bytes
        );
    }
    assert_eq!(
        requests.iter().map(|request| request.spans).sum::<usize>(),
        25_001 + 10_001,
        "no span sent twice"
    );
    assert_nothing_secret(&function, &secrets(&credentials), "splitting");
}

/// What the endpoint may answer, and a certificate for another name: the handler's answer stands,
/// the flush keeps to its bound, one warning per flush says what happened.
#[tokio::test]
async fn a_refusing_or_hanging_endpoint_costs_one_warning_and_nothing_more() {
    use http::StatusCode;
    // (what, receiver mode, certificate names, what the warning says)
    let cases: [(&str, Mode, &[&str], &str); 6] = [
        (
            "403",
            Mode::Fail(StatusCode::FORBIDDEN),
            &["127.0.0.1"],
            "403",
        ),
        (
            "413",
            Mode::Fail(StatusCode::PAYLOAD_TOO_LARGE),
            &["127.0.0.1"],
            "413",
        ),
        (
            "500",
            Mode::Fail(StatusCode::INTERNAL_SERVER_ERROR),
            &["127.0.0.1"],
            "500",
        ),
        (
            "429, retry after 5 s",
            Mode::FailTimes {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some("5"),
                times: 10,
            },
            &["127.0.0.1"],
            "would not fit",
        ),
        (
            "hangs",
            Mode::Hang,
            &["127.0.0.1"],
            "did not answer in time",
        ),
        (
            "certificate for another name",
            Mode::Accept,
            &["elsewhere.example"],
            "certificate",
        ),
    ];
    for (what, mode, names, says) in cases {
        let signed = Signed::start(names);
        let credentials = signed.store.issue(SHORT_LIFETIME);
        signed.receiver.set_mode(mode);
        let function = spawn(&signed.env(&[]));
        for _ in 0..2 {
            invoke(&function, json!({"children": 2}), what).await;
        }
        wait_for_warnings(&function, 2).await;
        let warnings = lines_with(&function, "span export failed");
        assert_eq!(
            warnings.len(),
            2,
            "{what}: one warning per flush: {warnings:?}"
        );
        // A request sent and never answered may have arrived: unconfirmed, not dropped.
        let counted = if what == "hangs" {
            "\"unconfirmed\":3"
        } else {
            "\"dropped\":3"
        };
        assert!(
            warnings[0].contains(says) && warnings[0].contains(counted),
            "{what}: {}",
            warnings[0]
        );
        eprintln!("{what}: {}", warnings[0]);
        if what.starts_with("429") {
            assert_eq!(
                signed.receiver.requests().len(),
                2,
                "{what}: no retry that cannot fit in the bound"
            );
        }
        assert_nothing_secret(&function, &secrets(&credentials), what);
        assert!(lines_with(&function, "panicked").is_empty(), "{what}");
    }
}

/// 429 and 503 with a `Retry-After` that fits in the bound are retried, signed anew; the spans
/// arrive and no warning is logged.
#[tokio::test]
async fn throttling_that_fits_in_the_bound_is_retried() {
    use http::StatusCode;
    for status in [
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        let signed = Signed::start(&["127.0.0.1"]);
        signed.store.issue(SHORT_LIFETIME);
        signed.receiver.set_mode(Mode::FailTimes {
            status,
            retry_after: Some("0"),
            times: 2,
        });
        let function = spawn(&signed.env(&[]));
        invoke(&function, json!({"children": 2}), status.as_str()).await;
        signed
            .receiver
            .wait_for_spans(3, WAIT)
            .await
            .unwrap_or_else(|error| panic!("{status}: {error}"));
        let requests = signed.receiver.requests();
        assert_eq!(requests.len(), 3, "{status}: two refused, then accepted");
        assert!(requests[2].accepted, "{status}: {requests:?}");
        assert!(lines_with(&function, "span export failed").is_empty());
    }
}

/// An `Authorization` header of the user's (an X-Ray API key) is sent instead of a signature, and
/// never logged.
#[tokio::test]
async fn an_api_key_replaces_the_signature() {
    let signed = Signed::start(&["127.0.0.1"]);
    let key = "Bearer xray-api-key-5e1f";
    signed.receiver.set_auth(Auth::Bearer(key.to_owned()));
    let function = spawn(&signed.env(&[(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "Authorization=Bearer%20xray-api-key-5e1f",
    )]));
    invoke(&function, json!({"children": 1}), "API key").await;
    signed
        .receiver
        .wait_for_spans(2, WAIT)
        .await
        .expect("spans sent with the key");
    let requests = signed.receiver.requests();
    assert_eq!(requests[0].authorization.as_deref(), Some("Bearer"));
    assert_eq!(
        signed.credentials.requests(),
        0,
        "no credentials are fetched when nothing is signed"
    );
    assert_nothing_secret(&function, &["xray-api-key-5e1f"], "API key");
}
