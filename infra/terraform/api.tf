# HTTP APIs do not emit X-Ray segments themselves (only REST APIs do): the trace starts at Lambda's segment
# for the api function.
resource "aws_apigatewayv2_api" "http" {
  name          = "${var.name_prefix}-api"
  description   = "tracekit example orders API"
  protocol_type = "HTTP"
}

resource "aws_cloudwatch_log_group" "api_access" {
  # checkov:skip=CKV_AWS_158:Access logs hold request metadata only; CloudWatch Logs encrypts them at rest without a customer managed key.
  # checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days, default 14 days) for an example stack; raise it where policy requires a year.
  name              = "/aws/http-api/${var.name_prefix}/access"
  retention_in_days = var.log_retention_days
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = 50
    throttling_rate_limit  = 20
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      ip                 = "$context.identity.sourceIp"
      requestTime        = "$context.requestTime"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      integrationLatency = "$context.integrationLatency"
      integrationError   = "$context.integrationErrorMessage"
    })
  }
}

resource "aws_apigatewayv2_integration" "api" {
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.api.invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "post_order" {
  # checkov:skip=CKV_AWS_309:The example API is public on purpose (curl it after deploy); put a JWT or IAM authorizer on the routes for real use.
  api_id    = aws_apigatewayv2_api.http.id
  route_key = "POST /orders"
  target    = "integrations/${aws_apigatewayv2_integration.api.id}"
}

resource "aws_apigatewayv2_route" "get_order" {
  # checkov:skip=CKV_AWS_309:The example API is public on purpose (curl it after deploy); put a JWT or IAM authorizer on the routes for real use.
  api_id    = aws_apigatewayv2_api.http.id
  route_key = "GET /orders/{id}"
  target    = "integrations/${aws_apigatewayv2_integration.api.id}"
}

resource "aws_lambda_permission" "api_gateway" {
  statement_id  = "AllowHttpApiInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}
