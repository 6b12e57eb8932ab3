//! `tracekit::metrics`: the EMF lines held to CloudWatch's rules by the harness's checker
//! (`integration_tests::emf`, written from AWS's specification), in-process for the limits and
//! through real function processes for every way an invocation ends and for Lambda Managed
//! Instances.

use futures_util::future::join_all;
use integration_tests::emf::{self, check, checked, dimension_names};
use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, stack};
use lambda_runtime::LambdaInvocation;
use serde_json::{Value, json};
use std::time::Duration;
use tower::{BoxError, Layer, service_fn};
use tracekit::metrics::{self, Resolution, Unit};
use tracekit::testing::{FakeInvocation, TestTelemetry};

const WAIT: Duration = Duration::from_secs(15);

/// One invocation through tracekit's layer whose handler runs `add`; the EMF lines it wrote.
async fn lines_of(add: impl Fn() + Send + Sync + Clone + 'static) -> Vec<Value> {
    lines_under(&[("TRACEKIT_METRICS_NAMESPACE", "Shop")], add).await
}

/// [`lines_of`] with the environment `pairs`.
async fn lines_under(
    pairs: &[(&str, &str)],
    add: impl Fn() + Send + Sync + Clone + 'static,
) -> Vec<Value> {
    let config = tracekit::Config::from_lookup(|name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    })
    .expect("valid");
    let test = TestTelemetry::with_config(config);
    let handler = service_fn(move |_: LambdaInvocation| {
        let add = add.clone();
        async move {
            add();
            Ok::<(), BoxError>(())
        }
    });
    let mut service = test.layer().layer(handler);
    FakeInvocation::new(json!({}))
        .send_to(&mut service)
        .await
        .expect("invocation");
    checked(&test.log_lines()).unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test]
async fn a_hundred_and_one_metrics_take_two_valid_lines() {
    let lines = lines_of(|| {
        for n in 0..101 {
            metrics::add_metric(format!("m{n}"), Unit::Count, f64::from(n));
        }
    })
    .await;
    assert_eq!(lines.len(), 2);
    let values = emf::values(&lines);
    assert_eq!(values.len(), 101);
    assert!((0..101).all(|n| values[&format!("m{n}")] == [f64::from(n)]));
}

#[tokio::test]
async fn a_hundred_and_one_values_take_two_valid_lines() {
    let lines = lines_of(|| {
        for n in 0..101 {
            metrics::add_metric("Latency", Unit::Milliseconds, f64::from(n));
        }
    })
    .await;
    assert_eq!(lines.len(), 2);
    assert_eq!(
        emf::values(&lines)["Latency"],
        (0..101).map(f64::from).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn thirty_one_dimensions_keep_thirty_and_lose_none() {
    let lines = lines_of(|| {
        metrics::add_metric("Orders", Unit::Count, 1.0);
        for n in 0..31 {
            metrics::add_dimension(format!("d{n}"), format!("v{n}"));
        }
    })
    .await;
    assert_eq!(lines.len(), 1);
    assert_eq!(
        dimension_names(&lines[0]).len(),
        emf::MAX_DIMENSIONS_PER_SET
    );
    for n in 0..31 {
        assert_eq!(lines[0][format!("d{n}")], format!("v{n}"), "d{n}");
    }
}

#[tokio::test]
async fn units_and_resolutions_are_cloudwatchs() {
    let lines = lines_of(|| {
        metrics::add_metric("Throughput", Unit::BytesPerSecond, 10.0);
        metrics::add_metric_with_resolution("Hot", Unit::Percent, 99.5, Resolution::High);
        metrics::single_metric("Refunds", Unit::Count, 1.0, &[("Region", "eu")]);
        metrics::add_metadata("orderId", "o-1");
    })
    .await;
    assert_eq!(lines.len(), 2);
    let definitions = &lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"];
    assert_eq!(
        definitions,
        &json!([
            {"Name": "Throughput", "Unit": "Bytes/Second"},
            {"Name": "Hot", "Unit": "Percent", "StorageResolution": 1},
        ])
    );
    assert_eq!(lines[0]["orderId"], "o-1");
    assert_eq!(dimension_names(&lines[1]), ["Region"]);
}

#[test]
fn the_checker_refuses_what_cloudwatch_refuses() {
    let good = json!({
        "_aws": {"Timestamp": 1_765_000_000_000_u64, "CloudWatchMetrics": [{
            "Namespace": "N", "Dimensions": [["service"]],
            "Metrics": [{"Name": "M", "Unit": "Count"}]}]},
        "service": "s", "M": 1
    });
    assert!(check(&good.to_string()).is_ok());
    let broken = |pointer: &str, value: Value| {
        let mut line = good.clone();
        *line.pointer_mut(pointer).expect("a member") = value;
        check(&line.to_string()).is_err()
    };
    assert!(broken("/_aws/Timestamp", json!(1_765_000_000)), "seconds");
    assert!(broken(
        "/_aws/CloudWatchMetrics/0/Metrics/0/Unit",
        json!("Counts")
    ));
    assert!(broken("/_aws/CloudWatchMetrics/0/Namespace", json!("")));
    assert!(broken("/service", json!(3)), "a dimension must be a string");
    assert!(broken("/M", json!("1")), "a metric must be a number");
    assert!(broken("/M", json!(vec![1; 101])), "101 values");
    assert!(broken(
        "/_aws/CloudWatchMetrics/0/Dimensions/0",
        json!(["service", "service"])
    ));
    assert!(broken(
        "/_aws/CloudWatchMetrics/0/Dimensions/0",
        json!((0..31).map(|n| n.to_string()).collect::<Vec<_>>())
    ));
    let mut many = good.clone();
    many["_aws"]["CloudWatchMetrics"][0]["Metrics"] = (0..101)
        .map(|n| json!({"Name": format!("m{n}"), "Unit": "Count"}))
        .collect();
    for n in 0..101 {
        many[format!("m{n}")] = json!(n);
    }
    assert!(check(&many.to_string()).is_err(), "101 metrics");
}

fn spawn(env: &[(&str, &str)]) -> (XrayDaemon, FunctionProcess) {
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.extend([
        ("AWS_XRAY_DAEMON_ADDRESS", agent.address()),
        ("TRACEKIT_METRICS_NAMESPACE", "Shop"),
    ]);
    let function =
        FunctionProcess::spawn(&stack::function_binary("traced-function"), &env).expect("spawn");
    (agent, function)
}

/// The function's EMF lines, checked, once every line written before now has been read: one more
/// invocation, whose child span logs under its request id, is answered and its line seen (stdout
/// keeps its order, and metric lines are written before the runtime asks for the next invocation).
async fn emf_lines(function: &FunctionProcess) -> Vec<Value> {
    let marker = format!("settle-{}", xray::new_segment_id());
    function
        .invoke(Invocation::json(json!({"children": 1})).request_id(marker.clone()))
        .await
        .expect("the settling invocation");
    function
        .wait_for_stdout(|line| line.contains(&marker), WAIT)
        .await
        .expect("the settling invocation's line");
    checked(&function.stdout()).unwrap_or_else(|error| panic!("{error}"))
}

fn header(trace_id: &str) -> String {
    format!(
        "Root={trace_id};Parent={};Sampled=1",
        xray::new_segment_id()
    )
}

#[tokio::test]
async fn every_way_an_invocation_ends_writes_its_metrics_and_none_adds_none() {
    let (_agent, function) = spawn(&[]);
    let plans = [
        (json!({"metrics": {"Orders": 1}, "flow": "ok"}), "ok"),
        (
            json!({"metrics": {"Orders": 2}, "flow": "failed", "fail": "refused"}),
            "failed",
        ),
        (
            json!({"metrics": {"Orders": 3}, "flow": "panicked", "panic": true}),
            "panicked",
        ),
        (json!({"children": 1}), "none"),
    ];
    let mut traces = Vec::new();
    for (payload, flow) in &plans {
        let trace_id = xray::new_trace_id();
        let outcome = function
            .invoke(Invocation::json(payload.clone()).trace_header(header(&trace_id)))
            .await
            .expect("invocation");
        match (*flow, &outcome) {
            ("ok" | "none", InvocationOutcome::Response(_)) => {}
            ("failed" | "panicked", InvocationOutcome::Error { .. }) => {}
            (flow, other) => panic!("{flow}: {other:?}"),
        }
        traces.push((trace_id, *flow));
    }
    let lines = emf_lines(&function).await;
    assert_eq!(
        lines.len(),
        3,
        "none for the invocation that added none: {lines:#?}"
    );
    for (n, (trace_id, flow)) in traces.iter().take(3).enumerate() {
        let line = lines
            .iter()
            .find(|line| line["Flow"] == *flow)
            .unwrap_or_else(|| panic!("no line for {flow}: {lines:#?}"));
        assert_eq!(line["Orders"], json!((n + 1) as f64));
        assert_eq!(line["traceId"], trace_id.as_str(), "{flow}");
        assert_eq!(line["service"], function.name());
        assert_eq!(dimension_names(line), ["service", "Flow"]);
        assert!(line["requestId"].is_string());
    }
}

#[tokio::test]
async fn under_managed_instances_each_line_holds_only_its_invocations_metrics() {
    let (_agent, function) = spawn(&[
        ("TRACED_FUNCTION_ENTRY", "concurrent"),
        ("AWS_LAMBDA_MAX_CONCURRENCY", "64"),
    ]);
    let calls = (0..64).map(|n| {
        let payload = json!({
            "metrics": {"Orders": n},
            "flow": format!("flow-{n}"),
            "sleep_ms": 20,
        });
        function.invoke_timed(Invocation::json(payload).trace_header(header(&xray::new_trace_id())))
    });
    let outcomes = join_all(calls).await;
    let in_flight = outcomes
        .iter()
        .filter_map(|timed| timed.as_ref().ok())
        .filter(|timed| matches!(timed.outcome, InvocationOutcome::Response(_)))
        .count();
    assert_eq!(in_flight, 64, "every invocation answered");
    // Each worker writes its invocation's line after answering it: wait for all of them.
    let until = std::time::Instant::now() + WAIT;
    let mut lines = checked(&function.stdout()).unwrap_or_else(|error| panic!("{error}"));
    while lines.len() < 64 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        lines = checked(&function.stdout()).unwrap_or_else(|error| panic!("{error}"));
    }
    assert_eq!(lines.len(), 64);
    let mut seen: Vec<i64> = lines
        .iter()
        .map(|line| {
            let n = line["Orders"].as_f64().expect("one value") as i64;
            assert_eq!(line["Flow"], format!("flow-{n}"), "{line}");
            n
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..64).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_cold_start_metric_is_written_once_per_process() {
    let (_agent, function) = spawn(&[("TRACEKIT_METRICS_COLD_START", "true")]);
    for _ in 0..3 {
        function
            .invoke(Invocation::json(json!({"children": 0})))
            .await
            .expect("invocation");
    }
    let lines = emf_lines(&function).await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["ColdStart"], json!(1.0));
    assert_eq!(lines[0]["function_name"], function.name());
    assert_eq!(dimension_names(&lines[0]), ["service", "function_name"]);
}

/// Each metric of `lines` by name: its namespace, dimensions (sorted, with values), unit,
/// resolution and every value, in order. How the metrics fall into lines is left aside: both
/// writers split at CloudWatch's limits, each its own way.
fn per_metric(lines: &[Value]) -> std::collections::BTreeMap<String, Value> {
    let mut metrics: std::collections::BTreeMap<String, Value> = Default::default();
    for line in lines {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        let mut dimensions: Vec<(String, Value)> = dimension_names(line)
            .into_iter()
            .map(|name| {
                let value = line[&name].clone();
                (name, value)
            })
            .collect();
        dimensions.sort_by(|a, b| a.0.cmp(&b.0));
        for definition in directive["Metrics"].as_array().expect("metrics") {
            let name = definition["Name"].as_str().expect("name").to_owned();
            let values: Vec<f64> = match &line[&name] {
                Value::Array(many) => many.iter().filter_map(Value::as_f64).collect(),
                one => one.as_f64().into_iter().collect(),
            };
            let entry = metrics.entry(name).or_insert_with(|| {
                json!({
                    "namespace": directive["Namespace"],
                    "dimensions": dimensions,
                    "unit": definition["Unit"],
                    "resolution": definition.get("StorageResolution").cloned().unwrap_or(json!(60)),
                    "values": [],
                })
            });
            assert_eq!(entry["dimensions"], json!(dimensions), "{line}");
            let all = entry["values"].as_array_mut().expect("values");
            all.extend(values.into_iter().map(Value::from));
        }
    }
    metrics
}

fn unit(name: &str) -> Unit {
    match name {
        "Count" => Unit::Count,
        "Milliseconds" => Unit::Milliseconds,
        "Bytes/Second" => Unit::BytesPerSecond,
        "Percent" => Unit::Percent,
        "None" => Unit::None,
        other => panic!("no unit {other} in this test"),
    }
}

#[tokio::test]
async fn powertools_writes_the_same_metrics_from_the_same_inputs() {
    let python = std::env::var("TRACEKIT_POWERTOOLS_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TRACEKIT_POWERTOOLS_PYTHON is not set: run the integration tests through \
             scripts/with-devstack, which installs AWS Lambda Powertools (scripts/devstack install)"
        )
    });
    let mut added: Vec<Value> = (0..101)
        .map(|n| json!([format!("m{n}"), "Count", n, "standard"]))
        .collect();
    added.extend((0..101).map(|n| json!(["Latency", "Milliseconds", n, "standard"])));
    added.push(json!(["Throughput", "Bytes/Second", 2.5, "high"]));
    added.push(json!(["Share", "Percent", 12.5, "standard"]));
    let spec = json!({
        "namespace": "Shop",
        "service": "orders",
        "function_name": "orders-fn",
        "cold_start": true,
        "metrics": added,
        "dimensions": [["PaymentMethod", "card"], ["Shop", "s1"]],
        "metadata": {"orderId": "o-1"},
        "singles": [["Refunds", "Count", 1, [["Region", "eu"]]]],
    });

    let mut child = tokio::process::Command::new(&python)
        .arg(stack::workspace_root().join("tests/python/powertools_metrics.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(spec.to_string().as_bytes())
            .await
            .expect("the spec");
    }
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("Powertools answered in time")
        .expect("Powertools ran");
    assert!(output.status.success(), "{:?}", output.status);
    let theirs: Vec<String> = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect();
    let theirs = checked(&theirs).unwrap_or_else(|error| panic!("Powertools' line: {error}"));

    let apply = spec.clone();
    let ours = lines_under(
        &[
            ("TRACEKIT_METRICS_NAMESPACE", "Shop"),
            ("OTEL_SERVICE_NAME", "orders"),
            ("AWS_LAMBDA_FUNCTION_NAME", "orders-fn"),
            ("TRACEKIT_METRICS_COLD_START", "true"),
        ],
        move || {
            let spec = &apply;
            for dimension in spec["dimensions"].as_array().expect("dimensions") {
                metrics::add_dimension(
                    dimension[0].as_str().expect("name"),
                    dimension[1].as_str().expect("value"),
                );
            }
            for (key, value) in spec["metadata"].as_object().expect("metadata") {
                metrics::add_metadata(key.clone(), value.clone());
            }
            for added in spec["metrics"].as_array().expect("metrics") {
                let resolution = match added[3].as_str() {
                    Some("high") => Resolution::High,
                    _ => Resolution::Standard,
                };
                metrics::add_metric_with_resolution(
                    added[0].as_str().expect("name"),
                    unit(added[1].as_str().expect("unit")),
                    added[2].as_f64().expect("value"),
                    resolution,
                );
            }
            for single in spec["singles"].as_array().expect("singles") {
                let dimensions: Vec<(&str, &str)> = single[3]
                    .as_array()
                    .expect("dimensions")
                    .iter()
                    .map(|d| (d[0].as_str().expect("name"), d[1].as_str().expect("value")))
                    .collect();
                metrics::single_metric(
                    single[0].as_str().expect("name"),
                    unit(single[1].as_str().expect("unit")),
                    single[2].as_f64().expect("value"),
                    &dimensions,
                );
            }
        },
    )
    .await;

    // Metadata is a property of the invocation's lines in both.
    for lines in [&ours, &theirs] {
        let main = lines
            .iter()
            .find(|line| line.get("Throughput").is_some())
            .expect("the invocation's line");
        assert_eq!(main["orderId"], "o-1");
    }
    let (ours, theirs) = (per_metric(&ours), per_metric(&theirs));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (name, theirs) in &theirs {
        assert_eq!(&ours[name], theirs, "metric {name}");
    }
}
