#!/usr/bin/env python3
"""AWS-side helpers for scripts/devstack (health checks, resources, env lines).

Run with the moto virtualenv's python (it has boto3). The `env` and
`wait-localstack` subcommands use only the standard library.

Endpoints and credentials come from the process environment, exactly as the
Rust SDK reads them: AWS_ENDPOINT_URL_<SERVICE>, then AWS_ENDPOINT_URL, plus
AWS_REGION / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.request

LOCALSTACK_SERVICES = ("s3", "sqs", "sns", "events", "stepfunctions")
HEALTHY_STATES = ("available", "running")


def log(msg: str) -> None:
    print(f"devstack: {msg}", file=sys.stderr, flush=True)


def load_resources(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def pid_alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- boto3

def client(service: str):
    import boto3
    from botocore.config import Config

    cfg = Config(
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=2,
        read_timeout=10,
        s3={"addressing_style": "path"},
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # No endpoint_url argument: botocore honours AWS_ENDPOINT_URL_<SERVICE> / AWS_ENDPOINT_URL.
    return boto3.session.Session(region_name=region).client(service, config=cfg)


def error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


# --------------------------------------------------------------------------- health

def wait_localstack(url: str, timeout: float, pid: int | None) -> int:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            log(f"LocalStack process {pid} exited during start-up")
            return 3
        try:
            with urllib.request.urlopen(f"{url}/_localstack/health", timeout=2) as resp:
                services = json.load(resp).get("services", {})
            states = {s: services.get(s, "missing") for s in LOCALSTACK_SERVICES}
            if all(v in HEALTHY_STATES for v in states.values()):
                return 0
            last = ", ".join(f"{k}={v}" for k, v in states.items())
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.25)
    log(f"LocalStack not healthy at {url} after {timeout:g}s (last: {last})")
    return 2


def wait_moto(url: str, timeout: float, pid: int | None) -> int:
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=3)
    ddb = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    ).client("dynamodb", endpoint_url=url, config=cfg)
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            log(f"moto process {pid} exited during start-up")
            return 3
        try:
            ddb.list_tables(Limit=1)
            return 0
        except Exception as exc:  # connection refused, 5xx while booting, ...
            last = str(exc)
        time.sleep(0.2)
    log(f"moto not healthy at {url} after {timeout:g}s (last: {last})")
    return 2


def check_external(timeout: float) -> int:
    """Probe whatever endpoints the environment points at (TRACEKIT_DEVSTACK_EXTERNAL=1)."""
    probes = {
        "s3": lambda: client("s3").list_buckets(),
        "sqs": lambda: client("sqs").list_queues(),
        "sns": lambda: client("sns").list_topics(),
        "events": lambda: client("events").list_event_buses(Limit=1),
        "stepfunctions": lambda: client("stepfunctions").list_state_machines(maxResults=1),
        "dynamodb": lambda: client("dynamodb").list_tables(Limit=1),
    }
    failed = []
    for name, probe in probes.items():
        deadline = time.monotonic() + timeout
        while True:
            try:
                probe()
                log(f"{name}: ok ({endpoint_for(name) or 'default AWS endpoint'})")
                break
            except Exception as exc:
                if time.monotonic() >= deadline:
                    log(f"{name}: NOT reachable at {endpoint_for(name) or 'default AWS endpoint'}: {exc}")
                    failed.append(name)
                    break
                time.sleep(0.5)
    try:
        client("xray").get_sampling_rules()
        log(f"xray: ok ({endpoint_for('xray') or 'default AWS endpoint'})")
    except Exception as exc:  # community LocalStack has no X-Ray: warn only
        log(f"warning: xray not available at {endpoint_for('xray') or 'default AWS endpoint'}: {exc}")
    return 1 if failed else 0


def endpoint_for(service: str) -> str:
    return os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get("AWS_ENDPOINT_URL", "")


# --------------------------------------------------------------------------- resources

def ensure_table(spec: dict) -> None:
    ddb = client("dynamodb")
    name, key = spec["name"], spec["hash_key"]
    try:
        desc = ddb.describe_table(TableName=name)["Table"]
        schema = [(k["AttributeName"], k["KeyType"]) for k in desc["KeySchema"]]
        if schema != [(key, "HASH")]:
            raise SystemExit(f"devstack: table {name} exists with key schema {schema}, expected [({key!r}, 'HASH')]")
        log(f"table {name}: exists")
        return
    except ddb.exceptions.ResourceNotFoundException:
        pass
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    log(f"table {name}: created (on-demand, hash key {key}:S)")


def ensure_bucket(spec: dict) -> None:
    s3 = client("s3")
    name = spec["name"]
    try:
        s3.head_bucket(Bucket=name)
        log(f"bucket {name}: exists")
        return
    except Exception as exc:
        if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
    try:
        s3.create_bucket(Bucket=name)  # us-east-1: no LocationConstraint
        log(f"bucket {name}: created")
    except s3.exceptions.BucketAlreadyOwnedByYou:
        log(f"bucket {name}: exists")


def ensure_queue(sqs, name: str, attributes: dict[str, str]) -> str:
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except Exception as exc:
        if not isinstance(exc, sqs.exceptions.QueueDoesNotExist) and "NonExistentQueue" not in error_code(exc):
            raise
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        log(f"queue {name}: created")
        return url
    if attributes:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    log(f"queue {name}: exists" + (" (attributes re-applied)" if attributes else ""))
    return url


def ensure_topic(spec: dict) -> str:
    arn = client("sns").create_topic(Name=spec["name"])["TopicArn"]  # idempotent
    log(f"topic {spec['name']}: ready")
    return arn


def local_topic_arn(queue_base: str, name: str) -> str:
    """The local stack's topic ARN, from the region and account its queue URLs name."""
    region, account = queue_base.rstrip("/").split("/")[-2:]
    return f"arn:aws:sns:{region}:{account}:{name}"


def create(resources: dict, queue_base: str | None) -> int:
    ensure_table(resources["table"])
    ensure_bucket(resources["bucket"])
    topic_arn = ensure_topic(resources["topic"])

    sqs = client("sqs")
    q = resources["queue"]
    dlq_url = ensure_queue(sqs, q["dlq"]["name"], {})
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(q["dlq"]["max_receive_count"])}
    queue_url = ensure_queue(
        sqs,
        q["name"],
        {"VisibilityTimeout": str(q["visibility_timeout"]), "RedrivePolicy": json.dumps(redrive)},
    )

    if queue_base:
        # `devstack env` prints queue URLs without asking the server; make sure they agree.
        for name, url in ((q["name"], queue_url), (q["dlq"]["name"], dlq_url)):
            if url != f"{queue_base}/{name}":
                log(f"queue URL {url} differs from the one `devstack env` prints ({queue_base}/{name})")
                return 1
        expected = local_topic_arn(queue_base, resources["topic"]["name"])
        if topic_arn != expected:
            log(f"topic ARN {topic_arn} differs from the one `devstack env` prints ({expected})")
            return 1
    return 0


def env_lines(resources: dict, queue_base: str | None) -> int:
    q, topic = resources["queue"], resources["topic"]
    if queue_base:
        queue_url, dlq_url = f"{queue_base}/{q['name']}", f"{queue_base}/{q['dlq']['name']}"
        topic_arn = local_topic_arn(queue_base, topic["name"])
    else:  # external stack: ask it
        sqs = client("sqs")
        queue_url = sqs.get_queue_url(QueueName=q["name"])["QueueUrl"]
        dlq_url = sqs.get_queue_url(QueueName=q["dlq"]["name"])["QueueUrl"]
        arns = [t["TopicArn"] for page in client("sns").get_paginator("list_topics").paginate() for t in page["Topics"]]
        matching = [arn for arn in arns if arn.rsplit(":", 1)[-1] == topic["name"]]
        if not matching:
            log(f"no topic {topic['name']} on the external stack (scripts/devstack resources creates it)")
            return 1
        topic_arn = matching[0]
    pairs = [
        (resources["table"]["env"], resources["table"]["name"]),
        (resources["bucket"]["env"], resources["bucket"]["name"]),
        (q["env"], queue_url),
        (q["dlq"]["env"], dlq_url),
        (topic["env"], topic_arn),
    ]
    for key, value in pairs:
        print(f"export {key}={shlex.quote(value)}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="devstack_aws.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("wait-localstack", "wait-moto"):
        w = sub.add_parser(name)
        w.add_argument("url")
        w.add_argument("--timeout", type=float, default=60)
        w.add_argument("--pid", type=int)
    e = sub.add_parser("check-external")
    e.add_argument("--timeout", type=float, default=30)
    for name in ("create", "env"):
        c = sub.add_parser(name)
        c.add_argument("--resources", required=True)
        c.add_argument("--queue-base", help="local stack: queue URLs are <queue-base>/<name>")
    a = p.parse_args()

    if a.cmd == "wait-localstack":
        return wait_localstack(a.url.rstrip("/"), a.timeout, a.pid)
    if a.cmd == "wait-moto":
        return wait_moto(a.url.rstrip("/"), a.timeout, a.pid)
    if a.cmd == "check-external":
        return check_external(a.timeout)
    resources = load_resources(a.resources)
    try:
        if a.cmd == "create":
            return create(resources, a.queue_base)
        return env_lines(resources, a.queue_base)
    except Exception as exc:
        if type(exc).__name__ in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
            log(f"{exc} -- is the stack up? (scripts/devstack status)")
            return 1
        raise


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
