"""template.yaml deployed on a local CloudFormation engine (moto's, started by scripts/devstack), and checked.

    python stack_deploy.py REPO_ROOT MOTO_ENDPOINT

For every combination of the stack's parameters (Architecture x TracesEndpoint x CollectorLayer x
ApplicationSignals: 24), in an account of its own:
  1. template.yaml is transformed by the pinned SAM translator, as CloudFormation does for `sam deploy`. Each
     function's CodeUri points at the zip `make lambda-build` built for its binary, and the collector config
     layer's ContentUri at a zip of what infra/Makefile builds (sam build's recipe), both uploaded to the
     account's S3 first, as `sam deploy` uploads them;
  2. the stack is created as `tracekit`, the default stack name, so that its names are infra/resources.json's,
     and must reach CREATE_COMPLETE;
  3. what the functions depend on is read back through the services' APIs and checked: the table, bucket,
     queues and redrive policy, the topic, the log groups; each function's code, role, tracing, architecture,
     layers and environment (every variable of infra/resources.json that the function's source reads must name
     the stack's own resource); the event source mapping with ReportBatchItemFailures; the invoke permissions;
     IAM policies that grant what each function needs on the stack's own resources and nothing on "*" except
     the X-Ray actions that have no resource-level permissions;
  4. the stack is deleted.

moto keeps only some properties of a resource (ENGINE_GAPS below). Those are read back through probes: stack
outputs whose values are the very expressions the resource was given, resolved by the engine (conditions,
parameters, references), so that what the parameters chose is checked as CloudFormation would hand it to the
service. The resource types moto's CloudFormation does not create at all (UNMODELLED) are checked the same way
and in the transform's output; cfn-lint (scripts/infra-check check) validates their properties against
CloudFormation's own schemas.
"""

import ast
import base64
import functools
import hashlib
import io
import itertools
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
import stack_consistency  # noqa: E402 (beside this script: the collector's port and config path)

REGION = "us-east-1"
STACK = "tracekit"  # template.yaml's documented default, which the names of infra/resources.json assume

# The choices template.yaml's parameters offer. CollectorLayer: no layer, AWS's ADOT layer, a layer by ARN.
PARAMETERS = {
    "Architecture": ("arm64", "x86_64"),
    "TracesEndpoint": ("agent", "xray-otlp"),
    "CollectorLayer": ("none", "adot", "arn:aws:lambda:us-east-1:123456789012:layer:my-collector:7"),
    "ApplicationSignals": ("false", "true"),
}
# Set with ApplicationSignals=true only, so that half the combinations also deploy non-default values of these.
OPTIONAL_PARAMETERS = {"PaymentsUrl": "https://payments.example.com", "LogRetentionDays": "30"}

# AWS's ADOT collector layer that CollectorLayer=adot names (template.yaml's parameter description).
ADOT_LAYER = "arn:aws:lambda:{region}:901920570463:layer:aws-otel-collector-{arch}-ver-0-156-0:1"
ADOT_ARCH = {"arm64": "arm64", "x86_64": "amd64"}
XRAY_OTLP_ENDPOINT = "https://xray.{region}.amazonaws.com/v1/traces"
APPLICATION_SIGNALS_POLICY = "arn:aws:iam::aws:policy/CloudWatchLambdaApplicationSignalsExecutionRolePolicy"
# X-Ray's actions with no resource-level permissions (Service Authorization Reference, AWS X-Ray): the only
# ones a statement may grant on "*".
UNSCOPED_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:PutSpans", "xray:PutSpansForIndexing"}
XRAY_AGENT_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
XRAY_OTLP_ACTIONS = ("xray:PutSpans", "xray:PutSpansForIndexing")

PUBLIC_ACCESS_BLOCK = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")

# Properties moto 5.2.5's CloudFormation does not pass on to the service (or the service does not keep):
# checked through probes. A path is a tuple of keys.
ENGINE_GAPS = {
    "AWS::Lambda::Function": (
        ("Architectures",),
        ("Layers",),
        ("TracingConfig", "Mode"),
        ("LoggingConfig", "LogGroup"),
        ("DeadLetterConfig", "TargetArn"),
    ),
    "AWS::IAM::Role": (("ManagedPolicyArns",),),
    "AWS::S3::Bucket": tuple(("PublicAccessBlockConfiguration", key) for key in PUBLIC_ACCESS_BLOCK),
    "AWS::Lambda::LayerVersion": (("LayerName",), ("CompatibleArchitectures",)),
    "AWS::SNS::Subscription": (("Protocol",), ("TopicArn",), ("Endpoint",)),
    "AWS::ApiGatewayV2::Stage": (("StageName",), ("AccessLogSettings", "DestinationArn")),
    "AWS::CloudWatch::Alarm": (("Namespace",), ("MetricName",)),
}
# Resource types moto 5.2.5's CloudFormation has no model for: it marks them complete and creates nothing.
UNMODELLED = {"AWS::SNS::Subscription", "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage", "AWS::CloudWatch::Alarm"}
# Types whose Ref moto does not resolve (a LayerVersion's Ref renders as a Python object; the unmodelled ones
# as None): a probe names the referenced resource instead, as "ref:LogicalId".
REF_UNRESOLVED = UNMODELLED | {"AWS::Lambda::LayerVersion"}

# What a function that reads a resource of infra/resources.json from its environment needs on it: at least one
# action of this kind. (No function reads the dead-letter queue's URL: it is for whoever redrives it.)
# The dimension tracekit::metrics gives every line: the service name.
SERVICE_DIMENSION = "service"
ENV_ACTIONS = {"table": "dynamodb:*Item", "bucket": "s3:*Object", "queue": "sqs:SendMessage", "topic": "sns:Publish"}
# How the functions read their environment (main.rs): required("NAME") or std::env::var("NAME").
ENV_READ = re.compile(r'(?:required|env::var)\("([A-Z][A-Z0-9_]*)"\)')
# The metrics a function's source adds (tracekit::metrics::add_metric("Name", ...)) and the dimensions it
# adds to them (add_dimension("Name", ...)): what an alarm on its embedded metric format lines can watch.
METRIC_ADDED = re.compile(r'add_metric(?:_with_resolution)?\(\s*"([^"]+)"')
DIMENSION_ADDED = re.compile(r'add_dimension\(\s*"([^"]+)"')


def combinations():
    names = list(PARAMETERS)
    for values in itertools.product(*(PARAMETERS[n] for n in names)):
        combo = dict(zip(names, values))
        if combo["ApplicationSignals"] == "true":
            combo.update(OPTIONAL_PARAMETERS)
        yield combo


def label(combo):
    layer = combo["CollectorLayer"] if not combo["CollectorLayer"].startswith("arn:") else "layer-arn"
    return f"{combo['Architecture']}/{combo['TracesEndpoint']}/collector={layer}/signals={combo['ApplicationSignals']}"


def exporter_path(combo):
    """What template.yaml documents: a collector layer wins; else xray-otlp or the agent (the default)."""
    if combo["CollectorLayer"] != "none":
        return "collector"
    return "xray-otlp" if combo["TracesEndpoint"] == "xray-otlp" else "agent"


# --- clients -------------------------------------------------------------------------------------------------


def clients(endpoint, account):
    """boto3 clients for moto, in `account` (moto's x-moto-account-id header), with dummy credentials."""
    import boto3

    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)

    def client(service):
        c = session.client(service, endpoint_url=endpoint)
        c.meta.events.register(
            "before-send", lambda request, **_: request.headers.__setitem__("x-moto-account-id", account)
        )
        return c

    return client


# --- artifacts and the transform -----------------------------------------------------------------------------


def zip_dir(directory):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def lambda_build_zip(root):
    """The function zips `make lambda-build` leaves in target/lambda/<binary>/bootstrap.zip."""

    def zip_of(binary):
        path = root / "target/lambda" / binary / "bootstrap.zip"
        if not path.is_file():
            sys.exit(f"stack-deploy: {path} is missing: run `make lambda-build` first")
        return path.read_bytes()

    return zip_of


def binary_zip(target_dir, command):
    """A zip holding target_dir/<binary> as `bootstrap`, as cargo lambda packages it."""

    def zip_of(binary):
        path = target_dir / binary
        if not path.is_file():
            sys.exit(f"stack-deploy: {path} is missing: run `{command}` first")
        buffer = io.BytesIO()
        # the fastest level: a debug build is hundreds of MB, and moto only stores it
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            archive.write(path, "bootstrap")
        return buffer.getvalue()

    return zip_of


def artifacts(root, template, zip_of):
    """{key: zip bytes}: each function's zip, by zip_of(binary), and the collector config layer."""
    found = {}
    for logical, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind == "AWS::Serverless::Function":
            binary = resource["Metadata"]["BuildProperties"]["Binary"]
            found[f"{binary}.zip"] = zip_of(binary)
        elif kind == "AWS::Serverless::LayerVersion":
            with tempfile.TemporaryDirectory() as out:
                content = root / resource["Properties"]["ContentUri"]
                subprocess.run(
                    ["make", "-s", "-C", str(content), f"build-{logical}", f"ARTIFACTS_DIR={out}"], check=True
                )
                found[f"{logical}.zip"] = zip_dir(out)
    return found


def transform(root, combo, bucket, mutate=None):
    """template.yaml as CloudFormation gets it from the SAM transform, code in s3://bucket, and each function's
    source directory and binary: (transformed template, {logical id: source dir}, {logical id: binary}).
    `mutate` edits the parsed template first (the self-check's broken stacks)."""
    os.environ["AWS_DEFAULT_REGION"] = REGION
    from samcli.yamlhelper import yaml_parse
    from samtranslator.translator.transform import transform as sam_transform

    # the translator warns that its usage metrics were never published: there is nowhere to publish them
    logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)

    template = yaml_parse((root / "template.yaml").read_text())
    if mutate:
        mutate(template)
    sources, binaries = {}, {}
    for logical, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            code = root / props["CodeUri"]  # a crate, or a workspace holding functions/<binary>
            binary = resource["Metadata"]["BuildProperties"]["Binary"]
            sources[logical] = code / "src" if (code / "src").is_dir() else code / "functions" / binary / "src"
            binaries[logical] = binary
            props["CodeUri"] = f"s3://{bucket}/{resource['Metadata']['BuildProperties']['Binary']}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://{bucket}/{logical}.zip"

    class NoManagedPolicies:
        """The templates name no managed policies by name (SAM policy templates need no lookup)."""

        def load(self):
            raise RuntimeError("the SAM transform asked for IAM managed policies by name: a template now uses them")

    return sam_transform(template, dict(combo), NoManagedPolicies()), sources, binaries


# --- probes --------------------------------------------------------------------------------------------------


def probe_expression(value, resources):
    """`value` as an expression the engine resolves to one string: lists joined with ",", through Fn::If's
    branches; AWS::NoValue as ""; a Ref moto does not resolve as "ref:LogicalId"; a literal as its JSON text
    (moto takes only strings and intrinsics as output values)."""
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, list):
        return {"Fn::Join": [",", [probe_expression(v, resources) for v in value]]}
    if isinstance(value, dict) and list(value) == ["Ref"]:
        target = value["Ref"]
        if target == "AWS::NoValue":
            return ""
        if resources.get(target, {}).get("Type") in REF_UNRESOLVED:
            return f"ref:{target}"
    if isinstance(value, dict) and list(value) == ["Fn::If"]:
        condition, chosen, otherwise = value["Fn::If"]
        return {"Fn::If": [condition, probe_expression(chosen, resources), probe_expression(otherwise, resources)]}
    return value


def add_probes(template):
    """Adds an output per property the engine drops; returns {output key: (logical id, path)}."""
    resources = template["Resources"]
    wanted = []
    for logical, resource in resources.items():
        for path in ENGINE_GAPS.get(resource["Type"], ()):
            wanted.append((logical, path))
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            for index, _ in enumerate(resource["Properties"].get("Dimensions", [])):
                wanted.append((logical, ("Dimensions", index, "Name")))
                wanted.append((logical, ("Dimensions", index, "Value")))
        if resource["Type"] == "AWS::ApiGatewayV2::Api":
            for route, methods in resource["Properties"]["Body"]["paths"].items():
                for method in methods:
                    wanted.append((logical, ("Body", "paths", route, method, "x-amazon-apigateway-integration", "uri")))
    for condition in sorted({r["Condition"] for r in resources.values() if "Condition" in r}):
        wanted.append((condition, ("Condition",)))
    probes = {}
    outputs = template.setdefault("Outputs", {})
    for number, (logical, path) in enumerate(wanted):
        if path == ("Condition",):  # whether the engine found the condition true
            outputs[f"TracekitProbe{number}"] = {"Value": {"Fn::If": [logical, "true", "false"]}}
            probes[f"TracekitProbe{number}"] = (logical, path)
            continue
        value = resources[logical].get("Properties", {})
        for key in path:
            if isinstance(key, int):
                value = value[key] if isinstance(value, list) and key < len(value) else None
            else:
                value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue  # the resource does not set it: the checks say where it must be set
        key = f"TracekitProbe{number}"
        outputs[key] = {"Value": probe_expression(value, resources)}
        probes[key] = (logical, path)
    return probes


@functools.cache
def source_metrics(directory):
    """The metric names and the dimension names the Rust sources under `directory` add."""
    text = "\n".join(p.read_text() for p in sorted(directory.rglob("*.rs")))
    return frozenset(METRIC_ADDED.findall(text)), frozenset(DIMENSION_ADDED.findall(text))


@functools.cache
def source_reads(directory):
    """The environment variables the Rust sources under `directory` read (read once per run)."""
    return frozenset(ENV_READ.findall("\n".join(p.read_text() for p in sorted(directory.rglob("*.rs")))))


# --- one deployment ------------------------------------------------------------------------------------------


class Deployment:
    """One stack on moto, in its own account: what was deployed, and what the engine made of it."""

    def __init__(self, root, endpoint, combo, account, mutate=None, stack=STACK):
        self.root, self.combo, self.account, self.stack = root, combo, account, stack
        self.client = clients(endpoint, account)
        self.bucket = f"tracekit-artifacts-{account}"
        self.template, self.sources, self.binaries = transform(root, combo, self.bucket, mutate)
        self.resources = self.template["Resources"]
        self.probe_paths = add_probes(self.template)
        self.physical, self.probes, self.outputs = {}, {}, {}  # what the engine made of it, once created
        self.errors = []
        self.checks = 0

    def run(self, uploads, check):
        """Creates the stack, runs check(self) on it and deletes it. An API call that fails is this deployment's
        failure; the others still run."""
        try:
            if self.create(uploads):
                check(self)
                self.delete()
        except Exception:
            self.errors.append(traceback.format_exc())
        return self

    def expect(self, ok, message):
        self.checks += 1
        if not ok:
            self.errors.append(message)
        return ok

    def deployed(self, logical):
        """Whether the parameters chose to create the resource (its Condition, as the engine resolved it)."""
        condition = self.resources[logical].get("Condition")
        return condition is None or self.probe(condition, "Condition") == "true"

    def of_type(self, kind):
        return [lg for lg, r in self.resources.items() if r["Type"] == kind and self.deployed(lg)]

    def reads(self, logical):
        """The environment variables the function's source reads."""
        return source_reads(self.sources[logical])

    def props(self, logical):
        return self.resources[logical].get("Properties", {})

    def create(self, uploads):
        s3 = self.client("s3")
        s3.create_bucket(Bucket=self.bucket)
        for key, body in uploads.items():
            s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        cfn = self.client("cloudformation")
        stack_id = cfn.create_stack(
            StackName=self.stack,
            TemplateBody=json.dumps(self.template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in self.combo.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )["StackId"]
        deadline = time.monotonic() + 60
        while True:
            stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
            if not stack["StackStatus"].endswith("_IN_PROGRESS") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if not self.expect(stack["StackStatus"] == "CREATE_COMPLETE", f"stack is {stack['StackStatus']}"):
            for event in cfn.describe_stack_events(StackName=stack_id)["StackEvents"]:
                if "FAILED" in event.get("ResourceStatus", ""):
                    self.errors.append(f"{event.get('LogicalResourceId')}: {event.get('ResourceStatusReason')}")
            return False
        self.stack_id = stack_id
        for r in cfn.describe_stack_resources(StackName=stack_id)["StackResources"]:
            if "LogicalResourceId" in r:
                self.physical[r["LogicalResourceId"]] = r.get("PhysicalResourceId")
        outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
        self.outputs = {k: v for k, v in outputs.items() if k not in self.probe_paths}
        for key, (logical, path) in self.probe_paths.items():
            self.probes[(logical, path)] = outputs.get(key)
        return True

    def probe(self, logical, *path):
        """The engine's value of a dropped property: a string, None when the resource does not set it."""
        return self.probes.get((logical, path))

    def probe_list(self, logical, *path):
        value = self.probe(logical, *path)
        return [v for v in (value or "").split(",") if v]

    def delete(self):
        cfn = self.client("cloudformation")
        cfn.delete_stack(StackName=self.stack_id)
        status = cfn.describe_stacks(StackName=self.stack_id)["Stacks"][0]["StackStatus"]
        self.expect(status == "DELETE_COMPLETE", f"stack deletion left it {status}")
        s3 = self.client("s3")
        for obj in s3.list_objects_v2(Bucket=self.bucket).get("Contents", []):
            s3.delete_object(Bucket=self.bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=self.bucket)


# --- the checks ----------------------------------------------------------------------------------------------


def engine_coverage(d):
    """moto created every resource the parameters chose, except exactly those of the UNMODELLED types, and
    nothing whose condition is false."""
    missing = {d.resources[lg]["Type"] for lg in d.resources if lg not in d.physical and d.deployed(lg)}
    used = {d.resources[lg]["Type"] for lg in d.resources if d.deployed(lg)} & UNMODELLED
    extra = [lg for lg in d.physical if not d.deployed(lg)]
    d.expect(not extra, f"moto created {extra}, whose conditions are false")
    d.expect(
        missing == used,
        f"moto's CloudFormation did not create {sorted(missing)}; this script checks {sorted(used)} another way",
    )


def parse_policy(document):
    """An IAM policy document as moto returns it: a dict, JSON, or (for a policy CloudFormation passed as an
    object) the Python repr of that dict."""
    if isinstance(document, dict):
        return document
    try:
        return json.loads(document)
    except json.JSONDecodeError:
        return ast.literal_eval(document)


def as_list(value):
    return value if isinstance(value, list) else [value]


def inline_statements(iam, role):
    """Every statement of the role's inline policies. moto keeps an `!If [..., !Ref AWS::NoValue]` statement as
    null, which CloudFormation drops."""
    statements = []
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = parse_policy(iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"])
        statements += [s for s in document["Statement"] if s is not None]
    return statements


def grants_on(statements, action, arn, part=False):
    """Whether a statement grants `action` (a pattern: "dynamodb:*Item") on `arn`, or with part=True on a
    part of it (a statement on bucket/notifications/* grants on the bucket's keys)."""
    return any(
        any(fnmatchcase(a, action) for a in as_list(s["Action"]))
        and any(fnmatchcase(arn, t) or (part and fnmatchcase(t, arn)) for t in as_list(s["Resource"]))
        for s in statements
    )


def code_sha256(zip_bytes):
    """A zip's CodeSha256, as Lambda reports it."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


class Checks:
    def __init__(self, d, resources_json, uploads, collector_port):
        self.d, self.names, self.uploads, self.collector_port = d, resources_json, uploads, collector_port
        self.c = d.client
        self.arns = {}  # logical id -> the ARN of each stack resource that a policy may name

    def run(self):
        self.data()
        self.function_env = {}  # logical id -> the environment the engine gave the function
        for logical in self.d.of_type("AWS::Lambda::Function"):
            self.function(logical)
        self.alarms()
        self.event_source_mappings()
        self.unmodelled()
        self.layers()

    # the table, the bucket, the queues, the topic, the log groups
    def data(self):
        d, names = self.d, self.names
        account = d.account
        by_type = lambda kind: {d.physical[lg]: lg for lg in d.of_type(kind)}  # noqa: E731

        tables = by_type("AWS::DynamoDB::Table")
        table = names["table"]["name"]
        if d.expect(table in tables, f"no table {table} (infra/resources.json); the stack made {sorted(tables)}"):
            desc = self.c("dynamodb").describe_table(TableName=table)["Table"]
            self.arns[tables[table]] = desc["TableArn"]
            d.expect(
                desc["KeySchema"] == [{"AttributeName": names["table"]["hash_key"], "KeyType": "HASH"}],
                f"table {table} keys {desc['KeySchema']}, infra/resources.json says hash key {names['table']['hash_key']}",
            )
            d.expect(
                desc.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST",
                f"table {table} is not on-demand: {desc.get('BillingModeSummary')}",
            )

        buckets = by_type("AWS::S3::Bucket")
        bucket = f"{names['bucket']['name']}-{account}-{REGION}"  # bucket names are global: template.yaml adds these
        s3 = self.c("s3")
        if d.expect(bucket in buckets, f"no bucket {bucket}; the stack made {sorted(buckets)}"):
            self.arns[buckets[bucket]] = f"arn:aws:s3:::{bucket}"
            rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
            d.expect(
                rules and rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms"),
                f"bucket {bucket} has no default encryption: {rules}",
            )
            block = {
                key: d.probe(buckets[bucket], "PublicAccessBlockConfiguration", key) for key in PUBLIC_ACCESS_BLOCK
            }
            d.expect(all(v == "true" for v in block.values()), f"bucket {bucket} is not closed to the public: {block}")

        sqs = self.c("sqs")
        self.queues = {}  # name -> (logical, url, attributes)
        for url, logical in by_type("AWS::SQS::Queue").items():
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            name = attributes["QueueArn"].rsplit(":", 1)[1]
            self.queues[name] = (logical, url, attributes)
            self.arns[logical] = attributes["QueueArn"]
            d.expect(
                attributes.get("SqsManagedSseEnabled") == "true" or "KmsMasterKeyId" in attributes,
                f"queue {name} is not encrypted at rest",
            )
        queue, dlq = names["queue"]["name"], names["queue"]["dlq"]["name"]
        for wanted in (queue, dlq):
            d.expect(
                wanted in self.queues, f"no queue {wanted} (infra/resources.json); the stack made {sorted(self.queues)}"
            )
        if queue in self.queues and dlq in self.queues:
            redrive = json.loads(self.queues[queue][2].get("RedrivePolicy", "{}"))
            d.expect(
                redrive.get("deadLetterTargetArn") == self.queues[dlq][2]["QueueArn"]
                and int(redrive.get("maxReceiveCount", 0)) == names["queue"]["dlq"]["max_receive_count"],
                f"queue {queue} redrive policy {redrive}: want {dlq} after "
                f"{names['queue']['dlq']['max_receive_count']} receives (infra/resources.json)",
            )

        topics = by_type("AWS::SNS::Topic")
        topic_arn = f"arn:aws:sns:{REGION}:{account}:{names['topic']['name']}"
        if d.expect(topic_arn in topics, f"no topic {topic_arn}; the stack made {sorted(topics)}"):
            self.c("sns").get_topic_attributes(TopicArn=topic_arn)
            self.arns[topics[topic_arn]] = topic_arn

        # variable -> (the value that names the stack's resource, the ARN a policy grants on, the kind)
        queue_url = lambda name: self.queues.get(name, (None, None))[1]  # noqa: E731
        queue_arn = lambda name: self.queues.get(name, (None, None, {}))[2].get("QueueArn")  # noqa: E731
        self.env_resources = {
            names["table"]["env"]: (table, self.arns.get(tables.get(table)), "table"),
            names["bucket"]["env"]: (bucket, f"arn:aws:s3:::{bucket}/*", "bucket"),
            names["queue"]["env"]: (queue_url(queue), queue_arn(queue), "queue"),
            names["queue"]["dlq"]["env"]: (queue_url(dlq), queue_arn(dlq), "dlq"),
            names["topic"]["env"]: (topic_arn, topic_arn, "topic"),
        }

        # the outputs `sam deploy` prints, for the variables their descriptions name: "... (ORDERS_TABLE)"
        for output, spec in self.d.template["Outputs"].items():
            named = re.search(r"\(([A-Z][A-Z0-9_]*)\)", spec.get("Description", ""))
            if named and output in d.outputs:
                value = self.env_resources.get(named.group(1), (None,))[0]
                d.expect(
                    d.outputs[output] == value,
                    f"output {output} is {d.outputs[output]!r}, {named.group(1)} is {value!r}",
                )

        logs = self.c("logs")
        self.log_groups = {}
        for name, logical in by_type("AWS::Logs::LogGroup").items():
            found = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
            group = next((g for g in found if g["logGroupName"] == name), None)
            if d.expect(group is not None, f"log group {name} does not exist"):
                self.log_groups[name] = logical
                self.arns[logical] = group["arn"].removesuffix(":*")
                want = int(d.combo.get("LogRetentionDays", 14))
                d.expect(
                    group.get("retentionInDays") == want,
                    f"log group {name} keeps {group.get('retentionInDays')} days, LogRetentionDays={want}",
                )

    def function(self, logical):
        d = self.d
        name = d.physical[logical]
        conf = self.c("lambda").get_function_configuration(FunctionName=name)
        binary = d.binaries[logical]
        where = f"function {name}"

        # the code is the zip built for its binary, run by the custom runtime as `bootstrap`
        d.expect(
            conf["CodeSha256"] == code_sha256(self.uploads[f"{binary}.zip"]),
            f"{where} does not run target/lambda/{binary}/bootstrap.zip",
        )
        d.expect(
            (conf["Runtime"], conf["Handler"]) == ("provided.al2023", "bootstrap"),
            f"{where}: runtime {conf['Runtime']}, handler {conf['Handler']}: a Rust function is provided.al2023's bootstrap",
        )
        # tracing, architecture, layers, log group: as the engine resolved them for the parameters
        d.expect(
            d.probe(logical, "TracingConfig", "Mode") == "Active",
            f"{where}: tracing is {d.probe(logical, 'TracingConfig', 'Mode')}, not Active: Lambda runs the X-Ray "
            "agent tracekit sends to only with active tracing",
        )
        arch = d.probe_list(logical, "Architectures")
        d.expect(
            arch == [d.combo["Architecture"]], f"{where}: architectures {arch}, Architecture={d.combo['Architecture']}"
        )
        self.function_layers(logical, where)
        log_group = d.probe(logical, "LoggingConfig", "LogGroup")
        d.expect(
            log_group == f"/aws/lambda/{name}" and log_group in self.log_groups,
            f"{where} logs to {log_group}, not to the stack's /aws/lambda/{name}",
        )
        role = self.role(logical, conf, where)
        self.function_env[logical] = conf.get("Environment", {}).get("Variables", {})
        self.environment(logical, self.function_env[logical], where)
        if role is not None:
            self.grants(logical, role, where)

    def alarms(self):
        """Each alarm watches a metric that exists: Lambda's own for a function of the stack, or one a function
        writes as embedded metric format lines: the namespace in its TRACEKIT_METRICS_NAMESPACE, the service
        dimension its OTEL_SERVICE_NAME, a name its source adds, and only dimensions its lines carry. And the API
        has both kinds (template.yaml's alarms section)."""
        d = self.d
        functions = {d.physical[lg]: lg for lg in self.function_env}
        watching = {}  # the function an alarm watches -> the kinds of alarm on it
        alarms = d.of_type("AWS::CloudWatch::Alarm")
        d.expect(alarms, "the stack has no CloudWatch alarm")
        for alarm in alarms:
            namespace, metric = d.probe(alarm, "Namespace"), d.probe(alarm, "MetricName")
            dimensions = {}
            index = 0
            while d.probe(alarm, "Dimensions", index, "Name") is not None:
                dimensions[d.probe(alarm, "Dimensions", index, "Name")] = d.probe(alarm, "Dimensions", index, "Value")
                index += 1
            where = f"alarm {alarm} ({namespace} {metric} {dimensions})"
            if namespace == "AWS/Lambda":
                target = functions.get(dimensions.get("FunctionName"))
                if d.expect(
                    target is not None and set(dimensions) == {"FunctionName"} and metric in ("Errors", "Throttles"),
                    f"{where}: not Lambda's Errors or Throttles of a function of the stack",
                ):
                    watching.setdefault(target, set()).add("lambda")
                continue
            owners = [
                lg
                for lg, env in self.function_env.items()
                if env.get("TRACEKIT_METRICS_NAMESPACE") == namespace
                and env.get("OTEL_SERVICE_NAME") == dimensions.get(SERVICE_DIMENSION)
            ]
            if not d.expect(
                len(owners) == 1,
                f"{where}: no function writes metrics in namespace {namespace!r} as service "
                f"{dimensions.get(SERVICE_DIMENSION)!r} (TRACEKIT_METRICS_NAMESPACE, OTEL_SERVICE_NAME)",
            ):
                continue
            names, added = source_metrics(d.sources[owners[0]])
            d.expect(
                metric in names,
                f"{where}: {d.sources[owners[0]]} adds no metric {metric!r}; it adds {sorted(names)}",
            )
            # A metric's dimension set is every dimension its line carries: service and those the code adds.
            d.expect(
                set(dimensions) == {SERVICE_DIMENSION} | added,
                f"{where}: the lines carry the dimensions {sorted({SERVICE_DIMENSION} | added)}",
            )
            watching.setdefault(owners[0], set()).add("emf")
        api = next((lg for lg in self.function_env if d.binaries[lg] == "api"), None)
        d.expect(
            api is not None and watching.get(api) == {"lambda", "emf"},
            f"the api's alarms: {sorted(watching.get(api, ()))}, want Lambda's Errors and its own OrderErrors",
        )

    def function_layers(self, logical, where):
        d = self.d
        layers = d.probe_list(logical, "Layers")
        choice = d.combo["CollectorLayer"]
        if choice == "none":
            d.expect(layers == [], f"{where} has layers {layers} with CollectorLayer=none (no layer: the agent path)")
            return
        collector = (
            ADOT_LAYER.format(region=REGION, arch=ADOT_ARCH[d.combo["Architecture"]]) if choice == "adot" else choice
        )
        config = [f"ref:{lg}" for lg in d.of_type("AWS::Lambda::LayerVersion")]
        d.expect(
            layers == [collector] + config and len(config) == 1,
            f"{where} has layers {layers}, CollectorLayer={choice} wants {[collector] + config}",
        )

    def role(self, logical, conf, where):
        d = self.d
        role_logical = d.props(logical)["Role"]["Fn::GetAtt"][0]
        role = self.c("iam").get_role(RoleName=d.physical[role_logical])["Role"]
        if not d.expect(conf["Role"] == role["Arn"], f"{where} runs as {conf['Role']}, not its role {role['Arn']}"):
            return None
        trust = parse_policy(role["AssumeRolePolicyDocument"])["Statement"]
        d.expect(
            [(s["Effect"], s["Principal"], s["Action"]) for s in trust]
            == [("Allow", {"Service": "lambda.amazonaws.com"}, "sts:AssumeRole")],
            f"{where}: role {role['RoleName']} trusts {trust}, want Lambda alone",
        )
        managed = d.probe_list(role_logical, "ManagedPolicyArns")
        want = [APPLICATION_SIGNALS_POLICY] if d.combo["ApplicationSignals"] == "true" else []
        d.expect(
            managed == want,
            f"{where}: role has managed policies {managed}, ApplicationSignals={d.combo['ApplicationSignals']}",
        )
        return role["RoleName"]

    def environment(self, logical, env, where):
        d = self.d
        # every variable of infra/resources.json the function's source reads names the stack's own resource
        read = d.reads(logical)
        for variable, (value, _, _) in self.env_resources.items():
            if variable in read:
                d.expect(
                    env.get(variable) == value, f"{where}: {variable}={env.get(variable)!r}, the stack's is {value!r}"
                )
        d.expect(read, f"{where}: found no variable its source reads ({d.sources[logical]}): has the pattern changed?")
        binary = d.binaries[logical]
        d.expect(
            env.get("OTEL_SERVICE_NAME") == f"tracekit-{binary}",
            f"{where}: OTEL_SERVICE_NAME={env.get('OTEL_SERVICE_NAME')!r}",
        )
        d.expect(
            env.get("OTEL_AWS_APPLICATION_SIGNALS_ENABLED") == d.combo["ApplicationSignals"],
            f"{where}: OTEL_AWS_APPLICATION_SIGNALS_ENABLED={env.get('OTEL_AWS_APPLICATION_SIGNALS_ENABLED')!r}",
        )
        if "PAYMENTS_URL" in read:
            d.expect(
                env.get("PAYMENTS_URL") == d.combo.get("PaymentsUrl", ""),
                f"{where}: PAYMENTS_URL={env.get('PAYMENTS_URL')!r}",
            )

        # the exporter path the parameters chose, in the variables tracekit reads
        path = exporter_path(d.combo)
        want = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": None,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": None,
            "OPENTELEMETRY_COLLECTOR_CONFIG_URI": None,
        }
        if path == "collector":
            want["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://localhost:{self.collector_port}"
            want["OPENTELEMETRY_COLLECTOR_CONFIG_URI"] = stack_consistency.COLLECTOR_CONFIG_PATH
        elif path == "xray-otlp":
            want["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = XRAY_OTLP_ENDPOINT.format(region=REGION)
        got = {k: env.get(k) for k in want}
        d.expect(got == want, f"{where}: exporter variables {got}, the {path} path wants {want}")
        d.expect(
            env.get("OTEL_TRACES_EXPORTER", "otlp") == "otlp",
            f"{where}: OTEL_TRACES_EXPORTER={env.get('OTEL_TRACES_EXPORTER')}",
        )

    def grants(self, logical, role, where):
        """Every statement names the stack's own resources (or "*" for X-Ray's unscoped actions only), and the
        role grants what the function's configuration needs."""
        d = self.d
        statements = inline_statements(self.c("iam"), role)
        own = set(self.arns.values())
        for s in statements:
            actions, targets = as_list(s["Action"]), as_list(s["Resource"])
            sid = s.get("Sid", "?")
            d.expect(
                s["Effect"] == "Allow" and all(":" in a and "*" not in a for a in actions),
                f"{where}: statement {sid} {actions}",
            )
            for target in targets:
                if target == "*":
                    d.expect(set(actions) <= UNSCOPED_ACTIONS, f"{where}: statement {sid} grants {actions} on *")
                else:
                    base = target.split("/", 1)[0] if target.startswith("arn:aws:s3:::") else target
                    d.expect(base in own, f"{where}: statement {sid} names {target}, not a resource of the stack")

        # a resource the function reads from its environment: some action of its kind on it, or on a part of it
        # (the notifier may write under notifications/ only)
        for variable, (_, arn, kind) in self.env_resources.items():
            pattern = ENV_ACTIONS.get(kind)
            if pattern and variable in d.reads(logical):
                d.expect(
                    grants_on(statements, pattern, arn or "", part=True),
                    f"{where} reads {variable} but its role grants no {pattern} on {arn}",
                )
        needs = []
        name = d.physical[logical]
        log_arn = self.arns.get(self.log_groups.get(f"/aws/lambda/{name}"))
        needs += [(a, log_arn) for a in ("logs:CreateLogStream", "logs:PutLogEvents")]
        needs += [(a, "*") for a in XRAY_AGENT_ACTIONS]  # Lambda's X-Ray agent sends with the function's role
        for esm in d.of_type("AWS::Lambda::EventSourceMapping"):
            if d.props(esm)["FunctionName"] == {"Ref": logical}:
                queue = self.arns.get(d.props(esm)["EventSourceArn"]["Fn::GetAtt"][0])
                needs += [(a, queue) for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")]
        dead_letters = d.probe(logical, "DeadLetterConfig", "TargetArn")
        if dead_letters:
            needs.append(("sqs:SendMessage", dead_letters))
        for action, arn in needs:
            d.expect(grants_on(statements, action, arn or ""), f"{where}: its role does not allow {action} on {arn}")
        otlp = [grants_on(statements, a, "*") for a in XRAY_OTLP_ACTIONS]
        want = exporter_path(d.combo) == "xray-otlp"
        d.expect(
            otlp == [want, want], f"{where}: xray:PutSpans granted {otlp}, wanted only on the xray-otlp path ({want})"
        )

    def event_source_mappings(self):
        d = self.d
        lam = self.c("lambda")
        mappings = d.of_type("AWS::Lambda::EventSourceMapping")
        d.expect(mappings, "no event source mapping: the worker is not fed by the queue")
        for esm in mappings:
            m = lam.get_event_source_mapping(UUID=d.physical[esm])
            function = d.physical[d.props(esm)["FunctionName"]["Ref"]]
            queue = self.arns.get(d.props(esm)["EventSourceArn"]["Fn::GetAtt"][0])
            d.expect(
                m["FunctionArn"].endswith(f":function:{function}") and m["EventSourceArn"] == queue,
                f"mapping {esm}: {m}",
            )
            # without it Lambda ignores the batchItemFailures tracekit's BatchProcessor returns, and retries all
            d.expect(
                m.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
                f"mapping {esm} to {function}: FunctionResponseTypes {m.get('FunctionResponseTypes')}",
            )
            d.expect(m["State"] in ("Enabled", "Creating"), f"mapping {esm} is {m['State']}")

    def unmodelled(self):
        """The types moto creates nothing for, checked through probes and the transform's output."""
        d = self.d
        engine_coverage(d)
        lam = self.c("lambda")
        arn = lambda logical: f"arn:aws:lambda:{REGION}:{d.account}:function:{d.physical[logical]}"  # noqa: E731
        for sub in d.of_type("AWS::SNS::Subscription"):
            endpoint = d.probe(sub, "Endpoint")
            target = next((lg for lg in d.of_type("AWS::Lambda::Function") if arn(lg) == endpoint), None)
            topic = d.probe(sub, "TopicArn")
            d.expect(
                d.probe(sub, "Protocol") == "lambda" and target and topic in self.arns.values(),
                f"subscription {sub}: {d.probe(sub, 'Protocol')} {endpoint} on {topic}",
            )
            # handler.rs's ORDER_PROCESSED, which the worker publishes as the String attribute `type`
            d.expect(
                d.props(sub).get("FilterPolicy") == {"type": ["order.processed"]},
                f"subscription {sub} filter {d.props(sub).get('FilterPolicy')}",
            )
            if target:
                policy = json.loads(lam.get_policy(FunctionName=d.physical[target])["Policy"])["Statement"]
                d.expect(
                    any(
                        s["Principal"] == {"Service": "sns.amazonaws.com"}
                        and s.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn") == topic
                        for s in policy
                    ),
                    f"{d.physical[target]} may not be invoked by SNS from {topic}: {policy}",
                )
                d.expect(
                    d.probe(target, "DeadLetterConfig", "TargetArn") in self.arns.values(),
                    f"{d.physical[target]} is invoked asynchronously by SNS and has no dead-letter queue of the stack",
                )
        for api in d.of_type("AWS::ApiGatewayV2::Api"):
            paths = d.props(api)["Body"]["paths"]
            routes = sorted((method.upper(), route) for route, methods in paths.items() for method in methods)
            d.expect(routes == [("GET", "/orders/{id}"), ("POST", "/orders")], f"HTTP API {api} routes {routes}")
            for route, methods in paths.items():
                for method, spec in methods.items():
                    integration = spec["x-amazon-apigateway-integration"]
                    uri = d.probe(api, "Body", "paths", route, method, "x-amazon-apigateway-integration", "uri")
                    want = (
                        f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn('ApiFunction')}/invocations"
                    )
                    d.expect(
                        uri == want
                        and integration.get("payloadFormatVersion") == "2.0"
                        and integration.get("type") == "aws_proxy",
                        f"HTTP API {method.upper()} {route}: integration {uri} {integration.get('payloadFormatVersion')}",
                    )
            policy = json.loads(lam.get_policy(FunctionName=d.physical["ApiFunction"])["Policy"])["Statement"]
            # moto renders the API's id (a Ref to an unmodelled type) as None; the rest of the ARN is resolved
            sources = sorted(
                s["Condition"]["ArnLike"]["AWS:SourceArn"].split("/", 1)[1]
                for s in policy
                if s["Principal"] == {"Service": "apigateway.amazonaws.com"}
            )
            d.expect(
                sources == ["*/GET/orders/*", "*/POST/orders"],
                f"API Gateway may invoke {d.physical['ApiFunction']} from {sources}",
            )
        for stage in d.of_type("AWS::ApiGatewayV2::Stage"):
            destination = d.probe(stage, "AccessLogSettings", "DestinationArn")
            d.expect(
                destination in self.arns.values(),
                f"stage {stage} logs access to {destination}, not to a log group of the stack",
            )

    def layers(self):
        d = self.d
        for logical in d.of_type("AWS::Lambda::LayerVersion"):
            d.expect(
                d.probe(logical, "LayerName") == f"{STACK}-collector-config",
                f"layer {logical} is named {d.probe(logical, 'LayerName')}",
            )
            d.expect(
                d.combo["Architecture"] in d.probe_list(logical, "CompatibleArchitectures"),
                f"layer {logical} is not for {d.combo['Architecture']}",
            )
            versions = [
                layer["LatestMatchingVersion"]
                for layer in self.c("lambda").list_layers()["Layers"]
                if logical in layer["LayerName"]  # moto names the layer after the logical id, not LayerName
            ]
            d.expect(len(versions) == 1, f"layer {logical}: moto holds {versions}")


# --- the starter template's stack -------------------------------------------------------------------------

STARTER_STACK = "hello-traces"  # the project scripts/template-check generates
XRAY_WRITE_POLICY = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"  # what SAM attaches for Tracing: Active


class StarterChecks:
    """The stack of a project made with `cargo lambda new --template templates/tracekit` (its template.yaml,
    SAM roles and policy templates included): what its user deploys with `sam deploy`."""

    def __init__(self, d, uploads):
        self.d, self.uploads, self.c = d, uploads, d.client

    def run(self):
        d = self.d
        engine_coverage(d)
        lam, sqs, iam = self.c("lambda"), self.c("sqs"), self.c("iam")
        queues = {}  # logical id -> attributes
        for logical in d.of_type("AWS::SQS::Queue"):
            queues[logical] = sqs.get_queue_attributes(QueueUrl=d.physical[logical], AttributeNames=["All"])[
                "Attributes"
            ]
        arns = {queues[lg]["QueueArn"] for lg in queues}
        for esm in d.of_type("AWS::Lambda::EventSourceMapping"):
            m = lam.get_event_source_mapping(UUID=d.physical[esm])
            queue = d.props(esm)["EventSourceArn"]["Fn::GetAtt"][0]
            d.expect(
                m.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
                f"mapping {esm}: FunctionResponseTypes {m.get('FunctionResponseTypes')}",
            )
            redrive = json.loads(queues[queue].get("RedrivePolicy", "{}"))
            d.expect(redrive.get("deadLetterTargetArn") in arns, f"queue {queue} redrive policy {redrive}")
        for logical in d.of_type("AWS::Lambda::Function"):
            conf = lam.get_function_configuration(FunctionName=d.physical[logical])
            binary, where = d.binaries[logical], f"function {logical}"
            d.expect(conf["CodeSha256"] == code_sha256(self.uploads[f"{binary}.zip"]), f"{where} does not run {binary}")
            d.expect(d.probe(logical, "TracingConfig", "Mode") == "Active", f"{where}: tracing is not Active")
            env, template_env = conf.get("Environment", {}).get("Variables", {}), d.props(logical)["Environment"]
            d.expect(
                env.get("OTEL_SERVICE_NAME") == binary, f"{where}: OTEL_SERVICE_NAME={env.get('OTEL_SERVICE_NAME')}"
            )
            for variable in d.reads(logical):
                ref = template_env["Variables"].get(variable, {})
                want = d.physical.get(ref.get("Ref")) if isinstance(ref, dict) else ref
                d.expect(variable in env and env[variable] == want, f"{where} reads {variable}: {env.get(variable)!r}")
            role_logical = d.props(logical)["Role"]["Fn::GetAtt"][0]
            role = d.physical[role_logical]
            managed = d.probe_list(role_logical, "ManagedPolicyArns")
            d.expect(XRAY_WRITE_POLICY in managed, f"{where}: the X-Ray agent cannot send with its role ({managed})")
            for statement in inline_statements(iam, role):
                for target in as_list(statement["Resource"]):
                    d.expect(target in arns, f"{where}: {statement['Action']} on {target}, not the stack's queue")


def starter_artifacts(project, target_dir):
    """The starter project's zips: its debug binaries, which scripts/template-check builds."""
    from samcli.yamlhelper import yaml_parse

    zips = binary_zip(target_dir, "scripts/template-check build")
    return artifacts(project, yaml_parse((project / "template.yaml").read_text()), zips)


def deploy_starter(project, uploads, endpoint, account, mutate=None):
    d = Deployment(project, endpoint, {}, account, mutate, stack=STARTER_STACK)
    return d.run(uploads, lambda d: StarterChecks(d, uploads).run())


STARTER_MUTATIONS = (
    ("tracing off", lambda t: t["Globals"]["Function"].update(Tracing="PassThrough"), "tracing is not Active"),
    (
        "no ReportBatchItemFailures",
        lambda t: _resource(t, "WorkerFunction")["Events"]["Queue"]["Properties"].pop("FunctionResponseTypes"),
        "FunctionResponseTypes None",
    ),
)


# --- the self-check: broken stacks that must fail ----------------------------------------------------------


def _resource(template, logical):
    return template["Resources"][logical]["Properties"]


def _statement(template, role, sid):
    statements = _resource(template, role)["Policies"][0]["PolicyDocument"]["Statement"]
    return next(s for s in statements if isinstance(s, dict) and s.get("Sid") == sid)


def _drop_statement(template, role, sid):
    document = _resource(template, role)["Policies"][0]["PolicyDocument"]
    document["Statement"] = [s for s in document["Statement"] if not (isinstance(s, dict) and s.get("Sid") == sid)]


# (what is broken, the edit, text the failure must contain): each deploys with the default parameters.
MUTATIONS = (
    ("tracing off", lambda t: t["Globals"]["Function"].update(Tracing="PassThrough"), "not Active"),
    (
        "no ReportBatchItemFailures",
        lambda t: _resource(t, "WorkerFunction")["Events"]["Orders"]["Properties"].pop("FunctionResponseTypes"),
        "FunctionResponseTypes None",
    ),
    (
        "a table name of another stack",
        lambda t: _resource(t, "ApiFunction")["Environment"]["Variables"].update(ORDERS_TABLE="orders"),
        "ORDERS_TABLE='orders'",
    ),
    (
        "the table's actions on *",
        lambda t: _statement(t, "ApiFunctionRole", "Orders").update(Resource="*"),
        "grants ['dynamodb:PutItem', 'dynamodb:GetItem'] on *",
    ),
    (
        "the worker cannot publish",
        lambda t: _drop_statement(t, "WorkerFunctionRole", "OrderProcessed"),
        "grants no sns:Publish",
    ),
    (
        "a fixed architecture",
        lambda t: t["Globals"]["Function"].update(Architectures=["x86_64"]),
        "architectures ['x86_64']",
    ),
    ("no redrive", lambda t: _resource(t, "OrdersQueue").pop("RedrivePolicy"), "redrive policy {}"),
    (
        "a collector endpoint on the agent path",
        lambda t: t["Globals"]["Function"]["Environment"]["Variables"].update(
            OTEL_EXPORTER_OTLP_ENDPOINT="http://localhost:4318"
        ),
        "the agent path wants",
    ),
    (
        "no dead-letter queue for SNS",
        lambda t: _resource(t, "NotifierFunction").pop("DeadLetterQueue"),
        "no dead-letter queue",
    ),
    (
        "an alarm on a metric the api never writes",
        lambda t: t["Resources"]["ApiOrderErrorsAlarm"]["Properties"].update(MetricName="OrderFailures"),
        "adds no metric 'OrderFailures'",
    ),
    (
        "an alarm in another namespace",
        lambda t: t["Resources"]["ApiOrderErrorsAlarm"]["Properties"].update(Namespace="Orders"),
        "no function writes metrics in namespace 'Orders'",
    ),
    (
        "an alarm with a dimension the lines do not carry",
        lambda t: t["Resources"]["ApiOrderErrorsAlarm"]["Properties"]["Dimensions"].append(
            {"Name": "PaymentMethod", "Value": "card"}
        ),
        "the lines carry the dimensions",
    ),
    (
        "no alarm on the api's Lambda errors",
        lambda t: t["Resources"].pop("ApiErrorsAlarm"),
        "want Lambda's Errors and its own OrderErrors",
    ),
)


def deploy_and_check(root, endpoint, combo, account, resources_json, uploads, port, mutate=None):
    d = Deployment(root, endpoint, combo, account, mutate)
    return d.run(uploads, lambda d: Checks(d, resources_json, uploads, port).run())


def report(name, d, began):
    """One line per deployment, its errors below; whether it failed."""
    status = "ok" if not d.errors else "FAILED"
    print(
        f"{name}: {len(d.physical)} resources created, {d.checks} checks, {status} ({time.monotonic() - began:.1f} s)"
    )
    for error in d.errors:
        print(f"  {error}", file=sys.stderr)
    return bool(d.errors)


def main():
    root, endpoint = Path(sys.argv[1]).resolve(), sys.argv[2]
    starter, starter_target = Path(sys.argv[3]).resolve(), Path(sys.argv[4]).resolve()
    from samcli.yamlhelper import yaml_parse

    resources_json = json.loads((root / "infra/resources.json").read_text())
    port = stack_consistency.check_collector(yaml.safe_load((root / "infra/collector.yaml").read_text()), [])
    uploads = artifacts(root, yaml_parse((root / "template.yaml").read_text()), lambda_build_zip(root))
    starter_uploads = starter_artifacts(starter, starter_target)
    run = int(time.time()) % 10**7  # a fresh account per run, so that a moto left running is no obstacle
    accounts = (f"{run:07d}{number:05d}" for number in itertools.count())

    def example(account, combo, mutate=None):
        return deploy_and_check(root, endpoint, combo, account, resources_json, uploads, port, mutate)

    def starter_stack(account, mutate=None):
        return deploy_starter(starter, starter_uploads, endpoint, account, mutate)

    failed, start, combos = 0, time.monotonic(), list(combinations())
    for combo in combos:
        began = time.monotonic()
        failed += report(label(combo), example(next(accounts), combo), began)
    print(
        f"stack-deploy: {len(combos) - failed} of {len(combos)} parameter combinations deployed and checked in "
        f"{time.monotonic() - start:.1f} s"
    )

    # The starter template's stack, as `cargo lambda new` then `sam deploy` would make it.
    began = time.monotonic()
    failed += report(f"starter template ({starter.name})", starter_stack(next(accounts)), began)

    # The checks must catch a broken stack: each mutation deploys and must fail, with the expected message.
    default = {name: values[0] for name, values in PARAMETERS.items()}
    broken = [
        ("example", what, message, mutate, lambda a, m: example(a, default, m)) for what, mutate, message in MUTATIONS
    ]
    broken += [("starter", what, message, mutate, starter_stack) for what, mutate, message in STARTER_MUTATIONS]
    caught = 0
    for stack, what, message, mutate, deploy in broken:
        d = deploy(next(accounts), mutate)
        if any(message in error for error in d.errors):
            caught += 1
        else:
            print(
                f"self-check: {stack} stack with {what} not caught by '{message}'; errors: {d.errors}", file=sys.stderr
            )
    print(f"self-check: {caught} of {len(broken)} broken stacks failed as they should")
    return 1 if failed or caught < len(broken) else 0


if __name__ == "__main__":
    sys.exit(main())
