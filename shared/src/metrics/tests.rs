//! The EMF lines tracekit builds, and metrics through invocations. (The lines are held to the
//! format's rules by the harness's checker, `tests/src/emf.rs`, in `tests/tests/metrics.rs`.)

use super::*;
use crate::metrics::{add_dimension, add_metric};
use crate::{
    config::{Config, FlushStrategy},
    testing::{FakeInvocation, TestTelemetry},
};
use lambda_runtime::LambdaInvocation;
use serde_json::json;
use std::collections::BTreeMap;
use tower::{BoxError, Layer, Service, service_fn};

fn emitter() -> Emitter<'static> {
    Emitter {
        namespace: Some("Orders"),
        service: "orders-api",
    }
}

fn context() -> LineContext<'static> {
    LineContext {
        request_id: Some("req-1"),
        trace_id: Some("1-5759e988-bd862e3fe1be46a994272793"),
        timestamp_ms: 1_765_000_000_000,
    }
}

fn lines(set: &MetricSet) -> Vec<Value> {
    emitter()
        .lines(set, context())
        .iter()
        .map(|line| {
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            serde_json::from_str(line).expect("a JSON line")
        })
        .collect()
}

/// Every value of every metric on `lines`, by name, in line order.
fn values(lines: &[Value]) -> BTreeMap<String, Vec<f64>> {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for line in lines {
        for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("metrics")
        {
            let name = metric["Name"].as_str().expect("name");
            let entry = values.entry(name.to_owned()).or_default();
            match &line[name] {
                Value::Array(many) => entry.extend(many.iter().map(|v| v.as_f64().expect("f64"))),
                one => entry.push(one.as_f64().expect("f64")),
            }
        }
    }
    values
}

fn dimension_names(line: &Value) -> Vec<String> {
    line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
        .as_array()
        .expect("a set")
        .iter()
        .map(|name| name.as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn a_line_names_its_namespace_service_dimensions_and_trace() {
    let mut set = MetricSet::default();
    set.add(
        "OrdersCreated".into(),
        Unit::Count,
        1.0,
        Resolution::Standard,
    );
    set.add("Latency".into(), Unit::Milliseconds, 12.5, Resolution::High);
    set.dimension("PaymentMethod".into(), "card".into());
    set.metadata.insert("orderId".into(), json!("o-123"));
    let lines = lines(&set);
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Orders");
    assert_eq!(line["_aws"]["Timestamp"], 1_765_000_000_000_u64);
    assert_eq!(dimension_names(line), ["service", "PaymentMethod"]);
    assert_eq!(line["service"], "orders-api");
    assert_eq!(line["PaymentMethod"], "card");
    assert_eq!(line["orderId"], "o-123");
    assert_eq!(line["requestId"], "req-1");
    assert_eq!(line["traceId"], "1-5759e988-bd862e3fe1be46a994272793");
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"],
        json!([
            {"Name": "OrdersCreated", "Unit": "Count"},
            {"Name": "Latency", "Unit": "Milliseconds", "StorageResolution": 1},
        ])
    );
    assert_eq!(line["OrdersCreated"], 1.0);
}

#[test]
fn a_service_dimension_replaces_the_default_one() {
    let mut set = MetricSet::default();
    set.add("Orders".into(), Unit::Count, 1.0, Resolution::Standard);
    set.dimension("service".into(), "checkout".into());
    let lines = lines(&set);
    assert_eq!(dimension_names(&lines[0]), ["service"]);
    assert_eq!(lines[0]["service"], "checkout");
}

#[test]
fn a_metric_named_as_a_member_every_line_has_is_refused_and_properties_never_shadow() {
    let mut set = MetricSet::default();
    set.add("service".into(), Unit::Count, 1.0, Resolution::Standard);
    set.add("requestId".into(), Unit::Count, 1.0, Resolution::Standard);
    set.add("Orders".into(), Unit::Count, 2.0, Resolution::Standard);
    set.dimension("Shop".into(), "s1".into());
    set.metadata
        .insert("Shop".into(), json!("not the dimension"));
    set.metadata
        .insert("Orders".into(), json!("not the metric"));
    set.metadata
        .insert("traceId".into(), json!("not the trace"));
    set.metadata.insert("note".into(), json!("kept"));
    let text = emitter().lines(&set, context()).concat();
    let line: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(line["service"], "orders-api");
    assert_eq!(line["requestId"], "req-1");
    assert_eq!(line["Shop"], "s1");
    assert_eq!(line["Orders"], 2.0);
    assert_eq!(line["traceId"], "1-5759e988-bd862e3fe1be46a994272793");
    assert_eq!(line["note"], "kept");
    let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .filter_map(|metric| metric["Name"].as_str())
        .collect();
    assert_eq!(names, ["Orders"]);
    // Every member once: the text has no key twice.
    for key in [
        "\"service\"",
        "\"Shop\"",
        "\"Orders\"",
        "\"traceId\"",
        "\"requestId\"",
    ] {
        assert_eq!(
            text.matches(&format!("{key}:")).count(),
            1,
            "{key} in {text}"
        );
    }
}

#[test]
fn more_than_a_hundred_metrics_are_split_over_lines() {
    let mut set = MetricSet::default();
    for n in 0..101 {
        set.add(
            format!("m{n}"),
            Unit::Count,
            f64::from(n),
            Resolution::Standard,
        );
    }
    let lines = lines(&set);
    let counts: Vec<usize> = lines
        .iter()
        .map(|line| {
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(counts, [100, 1]);
    let values = values(&lines);
    assert_eq!(values.len(), 101);
    assert!((0..101).all(|n| values[&format!("m{n}")] == [f64::from(n)]));
    for line in &lines {
        assert_eq!(
            line["requestId"], "req-1",
            "every line carries the properties"
        );
        assert_eq!(line["service"], "orders-api");
    }
}

#[test]
fn more_than_a_hundred_values_of_a_metric_are_split_over_lines() {
    let mut set = MetricSet::default();
    for n in 0..250 {
        set.add(
            "Latency".into(),
            Unit::Milliseconds,
            f64::from(n),
            Resolution::Standard,
        );
    }
    set.add("Other".into(), Unit::Count, 1.0, Resolution::Standard);
    let lines = lines(&set);
    assert_eq!(lines.len(), 3);
    let per_line: Vec<usize> = lines
        .iter()
        .map(|line| line["Latency"].as_array().map_or(1, Vec::len))
        .collect();
    assert_eq!(per_line, [100, 100, 50]);
    let values = values(&lines);
    assert_eq!(
        values["Latency"],
        (0..250).map(f64::from).collect::<Vec<_>>()
    );
    assert_eq!(values["Other"], [1.0]);
}

#[test]
fn a_dimension_past_the_thirtieth_is_kept_as_a_property() {
    let mut set = MetricSet::default();
    set.add("Orders".into(), Unit::Count, 1.0, Resolution::Standard);
    for n in 0..31 {
        set.dimension(format!("d{n}"), format!("v{n}"));
    }
    let lines = lines(&set);
    let names = dimension_names(&lines[0]);
    assert_eq!(names.len(), MAX_DIMENSIONS);
    assert_eq!(names[0], "service");
    // service + d0..d28 are dimensions; d29 and d30 are properties, not lost.
    assert_eq!(lines[0]["d29"], "v29");
    assert_eq!(lines[0]["d30"], "v30");
    assert!(!names.contains(&"d29".to_owned()));
}

#[test]
fn a_value_cloudwatch_cannot_hold_is_refused_and_the_rest_kept() {
    let mut set = MetricSet::default();
    set.add("Bad".into(), Unit::Count, f64::NAN, Resolution::Standard);
    set.add(
        "Inf".into(),
        Unit::Count,
        f64::INFINITY,
        Resolution::Standard,
    );
    set.add("".into(), Unit::Count, 1.0, Resolution::Standard);
    set.add("Good".into(), Unit::Count, 2.0, Resolution::Standard);
    let values = values(&lines(&set));
    assert_eq!(values.keys().collect::<Vec<_>>(), ["Good"]);
}

#[test]
fn a_single_metric_has_a_line_of_its_own_with_its_own_dimensions() {
    let mut set = MetricSet::default();
    set.add("Orders".into(), Unit::Count, 1.0, Resolution::Standard);
    set.dimension("PaymentMethod".into(), "card".into());
    let mut single = MetricSet::own_dimensions();
    single.add("Refunds".into(), Unit::Count, 1.0, Resolution::Standard);
    single.dimension("Region".into(), "eu".into());
    set.singles.push(single);
    set.cold_start("orders-api-fn");
    let lines = lines(&set);
    assert_eq!(lines.len(), 3);
    assert_eq!(
        dimension_names(&lines[1]),
        ["Region"],
        "its own dimensions only"
    );
    assert_eq!(lines[1]["Refunds"], 1.0);
    assert!(lines[1].get("PaymentMethod").is_none());
    assert_eq!(dimension_names(&lines[2]), ["service", "function_name"]);
    assert_eq!(lines[2]["ColdStart"], 1.0);
    assert_eq!(lines[2]["function_name"], "orders-api-fn");
    assert_eq!(
        lines[2]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
        "Count"
    );
}

#[test]
fn without_a_namespace_nothing_is_written() {
    let mut set = MetricSet::default();
    set.add("Orders".into(), Unit::Count, 1.0, Resolution::Standard);
    let emitter = Emitter {
        namespace: None,
        service: "orders-api",
    };
    let before = DROPPED.load(Ordering::Relaxed);
    assert!(emitter.lines(&set, context()).is_empty());
    assert!(DROPPED.load(Ordering::Relaxed) > before, "counted");
}

#[test]
fn an_empty_set_writes_nothing() {
    assert!(lines(&MetricSet::default()).is_empty());
}

fn config(pairs: &[(&str, &str)]) -> Config {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut config = Config::from_lookup(|name| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    })
    .expect("valid");
    config.flush = FlushStrategy::EndOfInvocation;
    config
}

async fn invoke<S>(service: &mut S, invocation: FakeInvocation)
where
    S: Service<LambdaInvocation, Response = (), Error = BoxError>,
{
    invocation.send_to(service).await.expect("invocation");
}

/// A handler that adds the metrics its event asks for, and fails when asked.
fn handler() -> impl Service<
    LambdaInvocation,
    Response = (),
    Error = BoxError,
    Future = impl Future<Output = Result<(), BoxError>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(|invocation: LambdaInvocation| async move {
        let event: Value = serde_json::from_slice(&invocation.body).expect("JSON event");
        if let Some(n) = event["n"].as_f64() {
            add_metric("Orders", Unit::Count, n);
            tokio::task::yield_now().await;
            add_dimension("Shop", event["shop"].as_str().unwrap_or("none"));
            add_metric("Orders", Unit::Count, n + 0.5);
        }
        if event["fail"] == true {
            crate::invocation::INVOCATION.with(|state| {
                *state.error.lock().expect("lock") =
                    Some(("OrderError".to_owned(), "no such order".to_owned()));
            });
        }
        Ok::<(), BoxError>(())
    })
}

fn emf_lines(test: &TestTelemetry) -> Vec<Value> {
    test.log_lines()
        .iter()
        .filter(|line| line.contains("\"_aws\""))
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn each_invocation_writes_its_own_metrics_when_it_ends() {
    let test = TestTelemetry::with_config(config(&[
        ("TRACEKIT_METRICS_NAMESPACE", "Shop"),
        ("OTEL_SERVICE_NAME", "orders"),
    ]));
    let service = test.layer().layer(handler());
    let invocations = (0..64).map(|n| {
        let mut service = service.clone();
        async move {
            let event = json!({"n": f64::from(n), "shop": format!("shop-{n}"), "fail": n % 7 == 0});
            invoke(
                &mut service,
                FakeInvocation::new(event).request_id(format!("req-{n}")),
            )
            .await;
        }
    });
    futures_util::future::join_all(invocations).await;
    let mut service = service;
    invoke(
        &mut service,
        FakeInvocation::new(json!({})).request_id("req-none"),
    )
    .await;

    let lines = emf_lines(&test);
    assert_eq!(
        lines.len(),
        64,
        "one line per invocation with metrics, none for the other"
    );
    for line in &lines {
        let request = line["requestId"].as_str().expect("requestId");
        let n: f64 = request
            .strip_prefix("req-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a line of an invocation with metrics: {line}"));
        assert_eq!(line["Orders"], json!([n, n + 0.5]), "{line}");
        assert_eq!(line["Shop"], format!("shop-{n}"));
        assert_eq!(line["service"], "orders");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Shop");
        let trace = line["traceId"].as_str().expect("the invocation's trace");
        assert!(trace.starts_with("1-"), "{trace}");
    }
    // A failed invocation (every 7th) wrote its metrics too.
    assert!(lines.iter().any(|line| line["requestId"] == "req-7"));
}

#[tokio::test]
async fn the_cold_start_metric_is_written_once_when_asked_for() {
    let test = TestTelemetry::with_config(config(&[
        ("POWERTOOLS_METRICS_NAMESPACE", "Shop"),
        ("TRACEKIT_METRICS_COLD_START", "true"),
        ("AWS_LAMBDA_FUNCTION_NAME", "orders-fn"),
    ]));
    let mut service = test.layer().layer(handler());
    for n in 0..3 {
        invoke(
            &mut service,
            FakeInvocation::new(json!({})).request_id(format!("req-{n}")),
        )
        .await;
    }
    let lines = emf_lines(&test);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["ColdStart"], 1.0);
    assert_eq!(lines[0]["function_name"], "orders-fn");
    assert_eq!(
        lines[0]["service"], "orders-fn",
        "the service is the function's name"
    );
    assert_eq!(lines[0]["requestId"], "req-0");

    // Not under provisioned concurrency, and not unless asked for.
    for pairs in [
        &[
            ("TRACEKIT_METRICS_NAMESPACE", "Shop"),
            ("TRACEKIT_METRICS_COLD_START", "true"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency"),
        ][..],
        &[("TRACEKIT_METRICS_NAMESPACE", "Shop")][..],
    ] {
        let test = TestTelemetry::with_config(config(pairs));
        let mut service = test.layer().layer(handler());
        invoke(&mut service, FakeInvocation::new(json!({}))).await;
        assert!(emf_lines(&test).is_empty(), "{pairs:?}");
    }
}

#[test]
fn the_namespace_is_read_under_tracekits_name_then_powertools() {
    let namespace = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })
        .map(|config| config.metrics.namespace)
    };
    assert_eq!(namespace(&[]).expect("valid"), None);
    assert_eq!(
        namespace(&[("POWERTOOLS_METRICS_NAMESPACE", "Shop")]).expect("valid"),
        Some("Shop".into())
    );
    assert_eq!(
        namespace(&[
            ("POWERTOOLS_METRICS_NAMESPACE", "Shop"),
            ("TRACEKIT_METRICS_NAMESPACE", "Orders/Api"),
        ])
        .expect("valid"),
        Some("Orders/Api".into())
    );
    let error = namespace(&[("POWERTOOLS_METRICS_NAMESPACE", "Shop$")])
        .expect_err("not a CloudWatch namespace")
        .to_string();
    assert!(error.contains("POWERTOOLS_METRICS_NAMESPACE"), "{error}");
    let error = namespace(&[("TRACEKIT_METRICS_COLD_START", "yes please")])
        .expect_err("not a bool")
        .to_string();
    assert!(error.contains("TRACEKIT_METRICS_COLD_START"), "{error}");
}
