# API Gateway REST API: POST /generate as a Lambda proxy integration.

resource "aws_api_gateway_rest_api" "registry" {
  name        = var.function_name
  description = "lambda-registry: POST /generate"

  endpoint_configuration {
    types = ["REGIONAL"]
  }
}

resource "aws_api_gateway_resource" "generate" {
  rest_api_id = aws_api_gateway_rest_api.registry.id
  parent_id   = aws_api_gateway_rest_api.registry.root_resource_id
  path_part   = "generate"
}

resource "aws_api_gateway_method" "generate_post" {
  rest_api_id      = aws_api_gateway_rest_api.registry.id
  resource_id      = aws_api_gateway_resource.generate.id
  http_method      = "POST"
  authorization    = "NONE"
  api_key_required = var.api_key_enabled
}

resource "aws_api_gateway_integration" "generate_post" {
  rest_api_id             = aws_api_gateway_rest_api.registry.id
  resource_id             = aws_api_gateway_resource.generate.id
  http_method             = aws_api_gateway_method.generate_post.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST" # Lambda is always invoked with POST
  uri                     = aws_lambda_function.registry.invoke_arn
}

# The permission the first version lacked: without it every call through the
# API failed with "Invalid permissions on Lambda function".
resource "aws_lambda_permission" "api_gateway" {
  statement_id  = "AllowInvokeFromApiGateway"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.registry.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.registry.execution_arn}/*/POST/generate"
}

resource "aws_api_gateway_deployment" "registry" {
  rest_api_id = aws_api_gateway_rest_api.registry.id

  # A new deployment whenever the route changes; otherwise the stage keeps
  # serving the old one.
  triggers = {
    redeployment = sha1(jsonencode([
      aws_api_gateway_resource.generate.id,
      aws_api_gateway_method.generate_post.id,
      aws_api_gateway_method.generate_post.api_key_required,
      aws_api_gateway_integration.generate_post.id,
      aws_api_gateway_integration.generate_post.uri,
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [aws_api_gateway_integration.generate_post]
}

resource "aws_api_gateway_stage" "registry" {
  rest_api_id   = aws_api_gateway_rest_api.registry.id
  deployment_id = aws_api_gateway_deployment.registry.id
  stage_name    = var.stage_name
}

# Optional: an API key and a usage plan on the stage (api_key_enabled).

resource "aws_api_gateway_api_key" "registry" {
  count = var.api_key_enabled ? 1 : 0
  name  = "${var.function_name}-key"
}

resource "aws_api_gateway_usage_plan" "registry" {
  count = var.api_key_enabled ? 1 : 0
  name  = "${var.function_name}-plan"

  api_stages {
    api_id = aws_api_gateway_rest_api.registry.id
    stage  = aws_api_gateway_stage.registry.stage_name
  }

  throttle_settings {
    rate_limit  = var.throttle_rate_limit
    burst_limit = var.throttle_burst_limit
  }
}

resource "aws_api_gateway_usage_plan_key" "registry" {
  count         = var.api_key_enabled ? 1 : 0
  key_id        = aws_api_gateway_api_key.registry[0].id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.registry[0].id
}
