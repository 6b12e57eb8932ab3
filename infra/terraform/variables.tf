variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "architecture" {
  description = "Lambda instruction set for both functions: arm64 (build with `cargo lambda build --release --arm64 --output-format zip`) or x86_64."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "adot_layer_arn" {
  description = <<-EOT
    ARN of the ADOT collector Lambda layer. null means AWS's aws-otel-collector-<amd64|arm64>-ver-0-117-0:1
    (ADOT Collector for Lambda v0.43.0, account 901920570463) in var.region for var.architecture. Layers are
    regional and per architecture; newer versions are listed at
    https://aws-otel.github.io/docs/getting-started/lambda/lambda-go and in the CHANGELOG of
    https://github.com/aws-observability/aws-otel-lambda.
  EOT
  type        = string
  default     = null
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

variable "log_retention_days" {
  description = "Retention of the functions' and the API's CloudWatch log groups, in days."
  type        = number
  default     = 14
}
