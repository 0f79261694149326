output "invoke_url" {
  description = "POST the payload here."
  value       = "${aws_api_gateway_stage.registry.invoke_url}/generate"
}

output "function_name" {
  description = "The Lambda function (aws lambda invoke --function-name ...)."
  value       = aws_lambda_function.registry.function_name
}

output "api_key" {
  description = "Value for the x-api-key header (with api_key_enabled); terraform output -raw api_key."
  value       = var.api_key_enabled ? aws_api_gateway_api_key.registry[0].value : null
  sensitive   = true
}
