//! The benchmark's function traced by awssdk-instrumentation, as its README sets up a function:
//! `make_lambda_runtime!` with its defaults (the `tracing` backend, its Lambda layer, opentelemetry-aws's
//! X-Ray exporter behind the SDK's batch processor, `force_flush` once the response is sent).

awssdk_instrumentation::make_lambda_runtime!(bench_handler::handler);
