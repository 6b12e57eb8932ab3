# tracekit example stack, the Terraform twin of template.yaml: an HTTP API function (orders in DynamoDB,
# receipts in S3, an event to SQS) and an SQS-triggered worker, traced with tracekit through the ADOT
# collector layer into AWS X-Ray.
#
# Names follow infra/resources.json (what the local stack creates): with the default name_prefix the table
# is tracekit-orders, the queues tracekit-orders and tracekit-orders-dlq. Bucket names are global, so the
# bucket adds the account id and region. The functions read the names from the environment variables that
# infra/resources.json lists.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id

  # The ADOT layer names spell x86_64 as amd64.
  adot_architecture = var.architecture == "arm64" ? "arm64" : "amd64"
  adot_layer_arn = coalesce(
    var.adot_layer_arn,
    "arn:${data.aws_partition.current.partition}:lambda:${var.region}:901920570463:layer:aws-otel-collector-${local.adot_architecture}-ver-0-117-0:1",
  )

  worker_timeout = 30

  # Environment shared by both functions (template.yaml: Globals).
  common_environment = {
    ORDERS_TABLE                       = aws_dynamodb_table.orders.name
    RECEIPTS_BUCKET                    = aws_s3_bucket.receipts.bucket
    OTEL_TRACES_EXPORTER               = "otlp"
    OTEL_EXPORTER_OTLP_ENDPOINT        = "http://localhost:4318"
    OTEL_EXPORTER_OTLP_PROTOCOL        = "http/protobuf"
    OTEL_PROPAGATORS                   = "tracecontext,baggage,xray"
    TRACEKIT_FLUSH_TIMEOUT_MS          = "500"
    OPENTELEMETRY_COLLECTOR_CONFIG_URI = "/opt/tracekit/collector.yaml"
  }
}
