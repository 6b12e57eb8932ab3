variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "architecture" {
  description = "Lambda instruction set for the functions: arm64 (build with `cargo lambda build --release --arm64 --output-format zip`) or x86_64."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "collector_layer" {
  description = <<-EOT
    "none" (default): no layer; tracekit sends OTLP over UDP to the X-Ray agent Lambda runs with active
    tracing. "adot": AWS's ADOT collector layer aws-otel-collector-<amd64|arm64>-ver-0-156-0:1 (ADOT Collector
    for Lambda v0.49.0, account 901920570463) in var.region for var.architecture, with infra/collector.yaml;
    worth its cold start only to export to a backend other than CloudWatch. An ARN: that collector layer.
    Layers are regional and per architecture; newer versions are listed at
    https://aws-otel.github.io/docs/getting-started/lambda and in the CHANGELOG of
    https://github.com/aws-observability/aws-otel-lambda.
  EOT
  type        = string
  default     = "none"

  validation {
    condition     = can(regex("^(none|adot|arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9_-]+:[0-9]+)$", var.collector_layer))
    error_message = "collector_layer must be none, adot or a Lambda layer version ARN."
  }
}

variable "traces_endpoint" {
  description = <<-EOT
    "agent" (default): OTLP over UDP to the X-Ray agent Lambda runs with active tracing. "xray-otlp":
    OTLP/HTTPS straight to X-Ray's OTLP endpoint in var.region (https://xray.<region>.amazonaws.com/v1/traces),
    SigV4-signed with the function's role, which then also gets xray:PutSpans and xray:PutSpansForIndexing;
    CloudWatch Transaction Search must be enabled in the account. Ignored when collector_layer is set.
  EOT
  type        = string
  default     = "agent"

  validation {
    condition     = contains(["agent", "xray-otlp"], var.traces_endpoint)
    error_message = "traces_endpoint must be agent or xray-otlp."
  }
}

variable "application_signals" {
  description = "Set OTEL_AWS_APPLICATION_SIGNALS_ENABLED (spans carry the attributes CloudWatch Application Signals reads, unsampled invocations are counted too) and attach AWS's CloudWatchLambdaApplicationSignalsExecutionRolePolicy to both roles. Application Signals must be enabled in the account."
  type        = bool
  default     = false
}

variable "payments_url" {
  description = "The payment provider the api has authorize each order's total (POST <url>/authorizations), PAYMENTS_URL. Empty (default): no provider, orders are taken as they come."
  type        = string
  default     = ""

  validation {
    condition     = var.payments_url == "" || can(regex("^https://[^\\s]+$", var.payments_url))
    error_message = "payments_url is empty or an https:// URL."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (the SAM stack name's role): <prefix>-orders, <prefix>-api, ... Lowercase, at most 20 characters, because it is part of the bucket name."
  type        = string
  default     = "tracekit"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name_prefix))
    error_message = "name_prefix must be lowercase letters, digits and hyphens, start with a letter, and be at most 20 characters."
  }
}

variable "api_zip" {
  description = "Deployment package of the api function, as written by `cargo lambda build --release --output-format zip` (run from the repository root)."
  type        = string
  default     = "../../target/lambda/api/bootstrap.zip"
}

variable "worker_zip" {
  description = "Deployment package of the worker function, as written by `cargo lambda build --release --output-format zip`."
  type        = string
  default     = "../../target/lambda/worker/bootstrap.zip"
}

variable "notifier_zip" {
  description = "Deployment package of the notifier function, as written by `cargo lambda build --release --output-format zip`."
  type        = string
  default     = "../../target/lambda/notifier/bootstrap.zip"
}

variable "log_retention_days" {
  description = "Retention of the functions' and the API's CloudWatch log groups, in days."
  type        = number
  default     = 14
}
