"""AWS Lambda Powertools for Python's Metrics, from the inputs tests/tests/metrics.rs gives tracekit.

    python powertools_metrics.py < spec.json

The spec (JSON on stdin): {"namespace", "service", "function_name", "cold_start": bool,
"metrics": [[name, unit, value, "standard" | "high"], ...], "dimensions": [[name, value], ...],
"metadata": {key: value}, "singles": [[name, unit, value, [[name, value], ...]], ...]}. One invocation
of a handler decorated with `log_metrics` adds them (dimensions and metadata first); Powertools prints its EMF lines on stdout.
"""

import json
import sys
from dataclasses import dataclass

from aws_lambda_powertools import Metrics, single_metric
from aws_lambda_powertools.metrics import MetricResolution


@dataclass
class Context:
    function_name: str
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:f"
    aws_request_id: str = "req-powertools"


def main():
    spec = json.load(sys.stdin)
    metrics = Metrics(namespace=spec["namespace"], service=spec["service"])

    @metrics.log_metrics(capture_cold_start_metric=spec["cold_start"])
    def handler(event, context):
        # Dimensions and metadata first: Powertools writes a line as soon as 100 metrics are added,
        # with the dimensions it has by then (tracekit writes when the invocation ends).
        for name, value in spec["dimensions"]:
            metrics.add_dimension(name=name, value=value)
        for key, value in spec["metadata"].items():
            metrics.add_metadata(key=key, value=value)
        for name, unit, value, resolution in spec["metrics"]:
            resolution = MetricResolution.High if resolution == "high" else MetricResolution.Standard
            metrics.add_metric(name=name, unit=unit, value=value, resolution=resolution)
        for name, unit, value, dimensions in spec["singles"]:
            with single_metric(name=name, unit=unit, value=value, namespace=spec["namespace"]) as one:
                for dimension, dimension_value in dimensions:
                    one.add_dimension(name=dimension, value=dimension_value)

    handler({}, Context(function_name=spec["function_name"]))


if __name__ == "__main__":
    main()
