# The API's error rate, per minute (template.yaml: ApiErrorsAlarm, ApiOrderErrorsAlarm): Lambda's Errors
# (the function failed: a panic, a timeout) and the API's own OrderErrors (a request it answered 5xx because
# storage, the queue or the payment provider failed), written by the api as an embedded metric format line
# (tracekit::metrics) with the dimension service.

resource "aws_cloudwatch_metric_alarm" "api_errors" {
  alarm_name          = "${var.name_prefix}-api-errors"
  alarm_description   = "The orders API's invocations failed (AWS/Lambda Errors)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.api.function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
}

resource "aws_cloudwatch_metric_alarm" "api_order_errors" {
  alarm_name          = "${var.name_prefix}-api-order-errors"
  alarm_description   = "Orders the API could not take (its OrderErrors metric, tracekit::metrics)."
  namespace           = local.common_environment.TRACEKIT_METRICS_NAMESPACE
  metric_name         = "OrderErrors"
  dimensions          = { service = "tracekit-api" }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
}
