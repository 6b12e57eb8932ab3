output "api_url" {
  description = "Base URL of the HTTP API (POST /orders, GET /orders/{id})."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "orders_table" {
  description = "DynamoDB table name (ORDERS_TABLE)."
  value       = aws_dynamodb_table.orders.name
}

output "receipts_bucket" {
  description = "S3 bucket name (RECEIPTS_BUCKET)."
  value       = aws_s3_bucket.receipts.bucket
}

output "orders_queue_url" {
  description = "SQS queue URL (ORDERS_QUEUE_URL)."
  value       = aws_sqs_queue.orders.url
}

output "orders_dlq_url" {
  description = "Dead-letter queue URL (ORDERS_DLQ_URL)."
  value       = aws_sqs_queue.orders_dlq.url
}

output "api_function_name" {
  description = "API function name."
  value       = aws_lambda_function.api.function_name
}

output "worker_function_name" {
  description = "Worker function name."
  value       = aws_lambda_function.worker.function_name
}

output "order_events_topic_arn" {
  description = "SNS topic ARN (ORDER_EVENTS_TOPIC_ARN)."
  value       = aws_sns_topic.order_events.arn
}

output "notifier_function_name" {
  description = "Notifier function name."
  value       = aws_lambda_function.notifier.function_name
}

output "notifications_dlq_url" {
  description = "The notifier's dead-letter queue URL."
  value       = aws_sqs_queue.notifications_dlq.url
}
