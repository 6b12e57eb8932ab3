"""Sends two spans through AWS's own OTLP-over-UDP exporter (aws-opentelemetry-distro's
OTLPUdpSpanExporter), once as sampled (T1S) and once as unsampled (T1U), to the address given.

tests/tests/agent.rs runs it with the pinned distro (scripts/devstack install) and compares the
datagrams with the ones tracekit writes.

Usage: aws_distro_udp.py HOST:PORT
"""

import sys

from amazon.opentelemetry.distro.otlp_udp_exporter import OTLPUdpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind


def main(address: str) -> int:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "aws-distro"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("aws-distro-check")
    with tracer.start_as_current_span("invocation", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("DynamoDB.PutItem", kind=SpanKind.CLIENT) as span:
            span.set_attribute("rpc.system", "aws-api")
    spans = memory.get_finished_spans()
    for sampled in (True, False):
        result = OTLPUdpSpanExporter(endpoint=address, sampled=sampled).export(spans)
        if result is not SpanExportResult.SUCCESS:
            print(f"OTLPUdpSpanExporter(sampled={sampled}) returned {result}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
