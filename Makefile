# tracekit — every command the README names is a target here.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

FUZZ_SECONDS ?= 60
BENCH_ROUNDS ?= 30
BENCH_INVOCATIONS ?= 1000
BENCH_VARIANTS := baseline lambda-runtime-otel otel-lite otel-xray awssdk-instrumentation fastrace

.PHONY: demo test check lint fmt clippy doc rust-version package bench fuzz devstack-up devstack-down devstack-status infra-check stack-deploy template-build lambda-build

## demo: the orders flow end to end (api → SQS → worker → SNS → notifier) on the local stack, and the trace it produced
demo:
	scripts/browser install
	$(CARGO) build -q -p api -p worker -p notifier -p tracekit-tools --bins
	scripts/with-devstack $(CARGO) run -q -p tracekit-tools --bin demo

## test: everything — infrastructure checks, unit tests, doc tests, a project generated from the cargo-lambda
## template, and the integration tests against LocalStack and moto
## (the functions' stack tests are #[ignore]d so that plain `cargo test` passes with nothing running; here they run)
test: infra-check lambda-build template-build stack-deploy
	scripts/browser install
	$(CARGO) build -q -p api -p worker -p notifier -p test-functions -p tracekit-tools --bins
	$(CARGO) test --workspace --all-features --no-run
	scripts/with-devstack $(CARGO) test --workspace --all-features -- --include-ignored

## bench: the criterion micro-benchmarks, then the whole-process benchmark of tracekit against the
## peers (and, under Lambda Managed Instances, against the untraced baseline's throughput);
## BENCHMARKS.md gets both, and the goals computed from them. Not part of `test`: it takes
## about half an hour, and needs valgrind (Debian package) for the instruction counts.
bench:
	cd bench && $(CARGO) build -q --release --locked -p bench-baseline --features concurrent && cp target/release/bench-baseline target/release/bench-baseline-concurrent
	for variant in $(BENCH_VARIANTS); do (cd bench && $(CARGO) build -q --release --locked -p bench-$$variant); done
	cd bench && $(CARGO) build -q --release --locked -p bench-tracekit --features xray && cp target/release/bench-tracekit target/release/bench-tracekit-xray
	cd bench && $(CARGO) build -q --release --locked -p bench-tracekit --features sigv4 && cp target/release/bench-tracekit target/release/bench-tracekit-sigv4
	cd bench && $(CARGO) build -q --release --locked -p bench-tracekit --features concurrent && cp target/release/bench-tracekit target/release/bench-tracekit-concurrent
	cd bench && $(CARGO) build -q --release --locked -p bench-tracekit --features metrics && cp target/release/bench-tracekit target/release/bench-tracekit-metrics
	cd bench && $(CARGO) build -q --release --locked -p bench-tracekit
	$(CARGO) build -q --profile bench-harness -p tracekit-tools --bin bench
	$(CARGO) bench -p tracekit --features testing,dynamodb,sqs,sns,eventbridge --bench spans --bench aws_sdk
	target/bench-harness/bench --functions bench/target/release --rounds $(BENCH_ROUNDS) --invocations $(BENCH_INVOCATIONS) --instructions --criterion target/criterion --out BENCHMARKS.md

## fuzz: every cargo-fuzz target for FUZZ_SECONDS each (default 60), after replaying seeds and regressions
fuzz:
	scripts/fuzz run $(FUZZ_SECONDS)

## check: formatting, lints, docs, the crate as crates.io would get it, then every test
check: lint package test

lint: fmt clippy doc rust-version

## package: `cargo publish --dry-run` of the tracekit crate: packaged, then built from the package alone
package:
	$(CARGO) publish --dry-run --locked -p tracekit

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(CARGO) clippy -p tracekit --no-default-features -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --all-features

## rust-version: the workspace's (and the template's) rust-version is at least what every pinned
## dependency declares it needs
rust-version:
	scripts/rust-version-check

devstack-up:
	scripts/devstack up

devstack-down:
	scripts/devstack down

devstack-status:
	scripts/devstack status

## lambda-build: cargo lambda build --release of api, worker and notifier for x86_64 (zips for infra/terraform)
lambda-build:
	scripts/infra-check lambda-build

## stack-deploy: template.yaml deployed on moto's CloudFormation for every parameter combination, and checked
## (the functions' zips from lambda-build); then the starter template's generated project's stack
stack-deploy: lambda-build template-build
	scripts/with-devstack scripts/infra-check deploy-local

## template-build: a project generated from the cargo-lambda starter template (templates/tracekit), built
template-build:
	scripts/template-check build

## infra-check: offline checks of template.yaml and infra/ (SAM, cfn-lint, checkov, terraform fmt/validate)
infra-check:
	scripts/infra-check check
