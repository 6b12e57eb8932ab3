# tracekit example stack, the Terraform twin of template.yaml: an HTTP API function (orders in DynamoDB,
# receipts in S3, an event to SQS) and an SQS-triggered worker, traced with tracekit into AWS X-Ray: by
# default as OTLP over UDP to the X-Ray agent Lambda runs (no layer, no collector), optionally through the
# ADOT collector layer (var.collector_layer).
#
# Names follow infra/resources.json (what the local stack creates): with the default name_prefix the table
# is tracekit-orders, the queues tracekit-orders and tracekit-orders-dlq. Bucket names are global, so the
# bucket adds the account id and region. The functions read the names from the environment variables that
# infra/resources.json lists.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id

  use_collector = var.collector_layer != "none"
  use_xray_otlp = var.traces_endpoint == "xray-otlp" && !local.use_collector
  # The ADOT layer names spell x86_64 as amd64.
  adot_architecture   = var.architecture == "arm64" ? "arm64" : "amd64"
  collector_layer_arn = var.collector_layer == "adot" ? "arn:${data.aws_partition.current.partition}:lambda:${var.region}:901920570463:layer:aws-otel-collector-${local.adot_architecture}-ver-0-156-0:1" : var.collector_layer
  layers              = local.use_collector ? [local.collector_layer_arn, aws_lambda_layer_version.collector_config[0].arn] : []

  worker_timeout = 30

  # Environment shared by the functions (template.yaml: Globals). `otlp` with no endpoint: OTLP over UDP
  # to the X-Ray agent; with a collector layer, OTLP/HTTP to it.
  common_environment = merge({
    ORDERS_TABLE                         = aws_dynamodb_table.orders.name
    RECEIPTS_BUCKET                      = aws_s3_bucket.receipts.bucket
    OTEL_TRACES_EXPORTER                 = "otlp"
    OTEL_EXPORTER_OTLP_PROTOCOL          = "http/protobuf"
    OTEL_PROPAGATORS                     = "tracecontext,baggage,xray"
    OTEL_AWS_APPLICATION_SIGNALS_ENABLED = tostring(var.application_signals)
    TRACEKIT_FLUSH_TIMEOUT_MS            = "500"
    TRACEKIT_METRICS_NAMESPACE           = "tracekit/orders"
  }, local.collector_environment, local.xray_otlp_environment)
  collector_environment = local.use_collector ? {
    OTEL_EXPORTER_OTLP_ENDPOINT        = "http://localhost:4318"
    OPENTELEMETRY_COLLECTOR_CONFIG_URI = "/opt/tracekit/collector.yaml"
  } : {}
  # tracekit signs requests to X-Ray's OTLP endpoint by itself (SigV4, service xray, the function's role).
  xray_otlp_environment = local.use_xray_otlp ? {
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "https://xray.${var.region}.amazonaws.com/v1/traces"
  } : {}
}
