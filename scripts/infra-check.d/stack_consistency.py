"""Offline checks no generic linter makes, run by scripts/infra-check (with the sam venv's Python: PyYAML).

1. infra/collector.yaml uses only components the ADOT Lambda layer's collector is built with, and its
   pipelines reference components it defines. The layer's collector fails to start on anything else (and
   the function's init with it), and no collector can be installed on these machines to try the file.
2. template.yaml and infra/terraform give the functions the same environment: the variable names of
   infra/resources.json, the same literal values (propagators, flush timeout...), and, only when a collector
   layer is chosen, an OTLP endpoint the collector config listens on and the config's path. With no collector
   (the default) no OTLP endpoint is set, so tracekit sends OTLP over UDP to Lambda's X-Ray agent.

Usage: python stack_consistency.py REPO_ROOT
"""

import json
import re
import sys
from pathlib import Path

import yaml

# aws-otel-lambda adot/collector/lambdacomponents/default.go, as read at ADOT Collector for Lambda v0.43.0.
# The config needs only the otlp receiver and the awsxray exporter, which every later layer (the stacks' `adot`
# choice is ver-0-156-0, v0.49.0) still has.
ADOT_LAYER_COMPONENTS = {
    "receivers": {"otlp"},
    "processors": set(),
    "exporters": {"awsxray", "awsemf", "prometheusremotewrite", "debug", "otlp", "otlphttp"},
    "extensions": {"sigv4auth"},
    "connectors": set(),
}
COLLECTOR_CONFIG_PATH = "/opt/tracekit/collector.yaml"  # where the config layer puts infra/collector.yaml


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML: every short-form intrinsic (!Ref, !Sub, ...) becomes {tag: value}."""


def _intrinsic(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"!" + tag_suffix: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def check_collector(config: dict, errors: list) -> int:
    """Returns the OTLP/HTTP port the collector listens on (0 when none)."""
    for section, allowed in ADOT_LAYER_COMPONENTS.items():
        for component_id in config.get(section) or {}:
            kind = component_id.split("/", 1)[0]
            if kind not in allowed:
                errors.append(
                    f"infra/collector.yaml: {section}.{component_id}: the ADOT Lambda layer's collector has no "
                    f"{section[:-1]} '{kind}' (it has: {', '.join(sorted(allowed)) or 'none'})"
                )
    service = config.get("service") or {}
    for ext in service.get("extensions") or []:
        if ext not in (config.get("extensions") or {}):
            errors.append(f"infra/collector.yaml: service.extensions names undefined extension '{ext}'")
    pipelines = service.get("pipelines") or {}
    if "traces" not in pipelines:
        errors.append("infra/collector.yaml: no traces pipeline")
    for name, pipeline in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(section) or []:
                if component_id not in (config.get(section) or {}):
                    errors.append(
                        f"infra/collector.yaml: pipeline {name} names undefined {section[:-1]} '{component_id}'"
                    )
    traces = pipelines.get("traces") or {}
    if "awsxray" not in [c.split("/", 1)[0] for c in traces.get("exporters") or []]:
        errors.append("infra/collector.yaml: the traces pipeline does not export to awsxray")
    http = (((config.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}).get("http") or {}
    endpoint = str(http.get("endpoint", ""))
    match = re.fullmatch(r"(localhost|127\.0\.0\.1):(\d+)", endpoint)
    if not match:
        errors.append(f"infra/collector.yaml: the OTLP/HTTP receiver should listen on localhost:PORT, not '{endpoint}'")
        return 0
    return int(match.group(2))


def template_environment(template: dict) -> dict:
    """Every environment variable the template sets (Globals and functions), name -> value."""
    env = {}
    blocks = [((template.get("Globals") or {}).get("Function") or {}).get("Environment")]
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            blocks.append((resource.get("Properties") or {}).get("Environment"))
    for block in blocks:
        env.update((block or {}).get("Variables") or {})
    return env


def terraform_environment(tf_dir: Path) -> dict:
    """Every upper-case `NAME = value` assignment in the .tf files: how the functions' environments are
    written there (locals.common_environment and the per-function merge). Literal strings are unquoted."""
    env = {}
    for tf in sorted(tf_dir.glob("*.tf")):
        for match in re.finditer(r"^\s*([A-Z][A-Z0-9_]*)\s*=\s*(.+?)\s*$", tf.read_text(), re.M):
            value = match.group(2)
            literal = re.fullmatch(r'"([^"$]*)"', value)
            env[match.group(1)] = literal.group(1) if literal else {"expression": value}
    return env


def collector_only(value, errors: list, where: str, name: str):
    """The value a variable has when a collector layer is chosen; an error unless it is set only then."""
    if isinstance(value, dict) and "!If" in value:
        condition, chosen, otherwise = value["!If"]
        if condition == "UseCollector" and otherwise == {"!Ref": "AWS::NoValue"}:
            return chosen
    errors.append(f"{where}: {name} must be set only with a collector layer (!If [UseCollector, value, !Ref AWS::NoValue])")
    return None


def terraform_collector_block(tf_dir: Path) -> str:
    """The text of locals.collector_environment, the variables set only with a collector layer."""
    match = re.search(r"collector_environment\s*=\s*local\.use_collector\s*\?\s*\{(.*?)\}\s*:\s*\{\}",
                      (tf_dir / "main.tf").read_text(), re.S)
    return match.group(1) if match else ""


def main() -> int:
    root = Path(sys.argv[1])
    errors = []

    collector = yaml.safe_load((root / "infra/collector.yaml").read_text())
    collector_port = check_collector(collector, errors)

    resources = json.loads((root / "infra/resources.json").read_text())
    required = {resources[kind]["env"] for kind in ("table", "bucket", "queue", "topic")}

    sam = template_environment(yaml.load((root / "template.yaml").read_text(), Loader=_CfnLoader))
    tf = terraform_environment(root / "infra/terraform")
    collector_block = terraform_collector_block(root / "infra/terraform")
    collector_vars = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OPENTELEMETRY_COLLECTOR_CONFIG_URI")
    for name in collector_vars:
        sam[name] = collector_only(sam.get(name), errors, "template.yaml", name)
        if not re.search(rf"^\s*{name}\s*=", collector_block, re.M):
            errors.append(f"infra/terraform: {name} must be set only in locals.collector_environment")
    for where, env in (("template.yaml", sam), ("infra/terraform", tf)):
        for name in sorted(required - env.keys()):
            errors.append(f"{where}: no function gets {name} (infra/resources.json names it)")
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint != f"http://localhost:{collector_port}":
            errors.append(
                f"{where}: OTEL_EXPORTER_OTLP_ENDPOINT is {endpoint!r} with a collector layer, the collector "
                f"listens on localhost:{collector_port}"
            )
        if env.get("OPENTELEMETRY_COLLECTOR_CONFIG_URI") != COLLECTOR_CONFIG_PATH:
            errors.append(f"{where}: OPENTELEMETRY_COLLECTOR_CONFIG_URI is not {COLLECTOR_CONFIG_PATH}")
    for name in sorted(sam.keys() ^ tf.keys()):
        errors.append(f"{name} is set in {'template.yaml' if name in sam else 'infra/terraform'} only")
    for name in sorted(sam.keys() & tf.keys()):
        if isinstance(sam[name], str) and isinstance(tf[name], str) and sam[name] != tf[name]:
            errors.append(f"{name}: template.yaml says {sam[name]!r}, infra/terraform says {tf[name]!r}")

    for error in errors:
        print(f"stack-consistency: {error}", file=sys.stderr)
    if not errors:
        print(f"collector config uses only ADOT-layer components; {len(sam)} environment variables agree")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
