# --- the collector config (var.collector_layer only) ---------------------------------------------------

# The function zips hold only `bootstrap`, so infra/collector.yaml travels in a layer of its own:
# /opt/tracekit/collector.yaml, named by OPENTELEMETRY_COLLECTOR_CONFIG_URI. It does not touch the ADOT
# layer's files (/opt/extensions, /opt/collector-config).
data "archive_file" "collector_config" {
  type        = "zip"
  output_path = "${path.module}/.build/collector-config.zip"

  source {
    content  = file("${path.module}/../collector.yaml")
    filename = "tracekit/collector.yaml"
  }
}

resource "aws_lambda_layer_version" "collector_config" {
  count                    = local.use_collector ? 1 : 0
  layer_name               = "${var.name_prefix}-collector-config"
  description              = "ADOT collector config for the tracekit functions (/opt/tracekit/collector.yaml)"
  filename                 = data.archive_file.collector_config.output_path
  source_code_hash         = data.archive_file.collector_config.output_base64sha256
  compatible_runtimes      = ["provided.al2023"]
  compatible_architectures = ["arm64", "x86_64"]
}

# --- roles ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "lambda_assume_role" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# X-Ray's PutTraceSegments and PutTelemetryRecords have no resource-level permissions: the only valid
# resource is "*" (Service Authorization Reference, AWS X-Ray). Lambda's X-Ray agent (active tracing) and,
# with a collector layer, the collector's awsxray exporter both send with the function's role.
data "aws_iam_policy_document" "traces" {
  statement {
    sid       = "Traces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  # X-Ray's OTLP endpoint (traces_endpoint = "xray-otlp"): the actions AWS lists for it.
  dynamic "statement" {
    for_each = local.use_xray_otlp ? [1] : []
    content {
      sid       = "OtlpTraces"
      actions   = ["xray:PutSpans", "xray:PutSpansForIndexing"]
      resources = ["*"]
    }
  }
}

data "aws_iam_policy_document" "api" {
  source_policy_documents = [data.aws_iam_policy_document.traces.json]

  statement {
    sid       = "Orders"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem"]
    resources = [aws_dynamodb_table.orders.arn]
  }

  statement {
    sid       = "Receipts"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.receipts.arn}/*"]
  }

  statement {
    sid       = "OrderEvents"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.orders.arn]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.api.arn}:*"]
  }
}

data "aws_iam_policy_document" "worker" {
  source_policy_documents = [data.aws_iam_policy_document.traces.json]

  # Used by the event source mapping, which polls the queue with the function's role.
  statement {
    sid       = "OrdersQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.orders.arn]
  }

  # No s3:ListBucket: a missing receipt answers 403 AccessDenied rather than 404 NoSuchKey.
  statement {
    sid       = "Receipts"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.receipts.arn}/*"]
  }

  statement {
    sid       = "Orders"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.orders.arn]
  }

  statement {
    sid       = "OrderProcessed"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.order_events.arn]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.worker.arn}:*"]
  }
}

data "aws_iam_policy_document" "notifier" {
  source_policy_documents = [data.aws_iam_policy_document.traces.json]

  statement {
    sid       = "Notifications"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.receipts.arn}/notifications/*"]
  }

  # Lambda sends what failed its retries to the dead-letter queue with the function's role.
  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.notifications_dlq.arn]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.notifier.arn}:*"]
  }
}

resource "aws_iam_role" "api" {
  name_prefix        = "${var.name_prefix}-api-"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
}

resource "aws_iam_role_policy" "api" {
  name   = "api"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.api.json
}

resource "aws_iam_role_policy_attachment" "api_application_signals" {
  count      = var.application_signals ? 1 : 0
  role       = aws_iam_role.api.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/CloudWatchLambdaApplicationSignalsExecutionRolePolicy"
}

resource "aws_iam_role" "worker" {
  name_prefix        = "${var.name_prefix}-worker-"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
}

resource "aws_iam_role_policy" "worker" {
  name   = "worker"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

resource "aws_iam_role_policy_attachment" "worker_application_signals" {
  count      = var.application_signals ? 1 : 0
  role       = aws_iam_role.worker.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/CloudWatchLambdaApplicationSignalsExecutionRolePolicy"
}

resource "aws_iam_role" "notifier" {
  name_prefix        = "${var.name_prefix}-notifier-"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
}

resource "aws_iam_role_policy" "notifier" {
  name   = "notifier"
  role   = aws_iam_role.notifier.id
  policy = data.aws_iam_policy_document.notifier.json
}

resource "aws_iam_role_policy_attachment" "notifier_application_signals" {
  count      = var.application_signals ? 1 : 0
  role       = aws_iam_role.notifier.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/CloudWatchLambdaApplicationSignalsExecutionRolePolicy"
}

# --- log groups ------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "api" {
  # checkov:skip=CKV_AWS_158:Log groups are encrypted at rest by CloudWatch Logs; a customer managed KMS key is not needed for logs that hold no payloads (tracekit never logs item values or bodies).
  # checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days, default 14 days) for an example stack; raise it where policy requires a year.
  name              = "/aws/lambda/${var.name_prefix}-api"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "worker" {
  # checkov:skip=CKV_AWS_158:Log groups are encrypted at rest by CloudWatch Logs; a customer managed KMS key is not needed for logs that hold no payloads (tracekit never logs item values or bodies).
  # checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days, default 14 days) for an example stack; raise it where policy requires a year.
  name              = "/aws/lambda/${var.name_prefix}-worker"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "notifier" {
  # checkov:skip=CKV_AWS_158:Log groups are encrypted at rest by CloudWatch Logs; a customer managed KMS key is not needed for logs that hold no payloads (tracekit never logs item values or bodies).
  # checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days, default 14 days) for an example stack; raise it where policy requires a year.
  name              = "/aws/lambda/${var.name_prefix}-notifier"
  retention_in_days = var.log_retention_days
}

# --- functions -------------------------------------------------------------------------------------------

resource "aws_lambda_function" "api" {
  # checkov:skip=CKV_AWS_116:API Gateway invokes this function synchronously; a DLQ only applies to asynchronous invocations.
  # checkov:skip=CKV_AWS_117:The function calls only public endpoints (DynamoDB, S3, SQS, X-Ray, the payment provider's HTTPS URL); a VPC would add NAT or VPC endpoints and cold-start time for no isolation gain.
  # checkov:skip=CKV_AWS_115:Reserved concurrency would fail deployment in accounts with the default low concurrency quota; the HTTP API stage throttles instead (default_route_settings).
  # checkov:skip=CKV_AWS_173:The environment holds resource names and OTel settings only, no secrets; Lambda encrypts it at rest with an AWS managed key.
  # checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and signed zips; cargo lambda output is deployed as built by this stack's owner.
  function_name    = "${var.name_prefix}-api"
  description      = "tracekit example HTTP API (POST /orders, GET /orders/{id})"
  role             = aws_iam_role.api.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = var.api_zip
  source_code_hash = filebase64sha256(var.api_zip)
  memory_size      = 256
  timeout          = 10
  layers           = local.layers

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.api.name
  }

  environment {
    variables = merge(local.common_environment, {
      ORDERS_QUEUE_URL  = aws_sqs_queue.orders.url
      PAYMENTS_URL      = var.payments_url
      OTEL_SERVICE_NAME = "tracekit-api"
    })
  }

  # Active tracing is checked against the role's X-Ray permissions when the function is created.
  depends_on = [aws_iam_role_policy.api]
}

resource "aws_lambda_function" "worker" {
  # checkov:skip=CKV_AWS_116:The SQS event source mapping invokes this function; failed messages go to the queue's own dead-letter queue (redrive_policy), a function DLQ only applies to asynchronous invocations.
  # checkov:skip=CKV_AWS_117:The function calls only public AWS endpoints (DynamoDB, S3, SNS, X-Ray); a VPC would add NAT or VPC endpoints and cold-start time for no isolation gain.
  # checkov:skip=CKV_AWS_115:Reserved concurrency would fail deployment in accounts with the default low concurrency quota; the event source mapping's batch size bounds the work per invocation.
  # checkov:skip=CKV_AWS_173:The environment holds resource names and OTel settings only, no secrets; Lambda encrypts it at rest with an AWS managed key.
  # checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and signed zips; cargo lambda output is deployed as built by this stack's owner.
  function_name    = "${var.name_prefix}-worker"
  description      = "tracekit example SQS worker (reads the receipt, updates the order, publishes order.processed)"
  role             = aws_iam_role.worker.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = var.worker_zip
  source_code_hash = filebase64sha256(var.worker_zip)
  memory_size      = 256
  timeout          = local.worker_timeout
  layers           = local.layers

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.worker.name
  }

  environment {
    variables = merge(local.common_environment, {
      ORDER_EVENTS_TOPIC_ARN = aws_sns_topic.order_events.arn
      OTEL_SERVICE_NAME      = "tracekit-worker"
      TRACEKIT_SQS_PARENT    = "parent-if-single"
    })
  }

  depends_on = [aws_iam_role_policy.worker]
}

resource "aws_lambda_event_source_mapping" "worker" {
  event_source_arn        = aws_sqs_queue.orders.arn
  function_name           = aws_lambda_function.worker.arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]
}

resource "aws_lambda_function" "notifier" {
  # checkov:skip=CKV_AWS_117:The function calls only public AWS endpoints (S3, X-Ray); a VPC would add NAT or VPC endpoints and cold-start time for no isolation gain.
  # checkov:skip=CKV_AWS_115:Reserved concurrency would fail deployment in accounts with the default low concurrency quota; one SNS message per invocation bounds the work.
  # checkov:skip=CKV_AWS_173:The environment holds resource names and OTel settings only, no secrets; Lambda encrypts it at rest with an AWS managed key.
  # checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and signed zips; cargo lambda output is deployed as built by this stack's owner.
  function_name    = "${var.name_prefix}-notifier"
  description      = "tracekit example SNS notifier (writes the order's notification to S3)"
  role             = aws_iam_role.notifier.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = var.notifier_zip
  source_code_hash = filebase64sha256(var.notifier_zip)
  memory_size      = 256
  timeout          = 10
  layers           = local.layers

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.notifier.name
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.notifications_dlq.arn
  }

  environment {
    variables = merge(local.common_environment, {
      OTEL_SERVICE_NAME = "tracekit-notifier"
    })
  }

  depends_on = [aws_iam_role_policy.notifier]
}

resource "aws_lambda_permission" "notifier_from_sns" {
  statement_id  = "order-events"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.notifier.function_name
  principal     = "sns.amazonaws.com"
  source_arn    = aws_sns_topic.order_events.arn
}

resource "aws_sns_topic_subscription" "notifier" {
  topic_arn     = aws_sns_topic.order_events.arn
  protocol      = "lambda"
  endpoint      = aws_lambda_function.notifier.arn
  filter_policy = jsonencode({ type = ["order.processed"] })

  depends_on = [aws_lambda_permission.notifier_from_sns]
}
