# The function, its log group and its role.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  package_path = coalesce(var.package_path, "${path.module}/../../build/lambda-registry-lambda.zip")
  # With artifact_bucket the zip goes through S3, else straight to Lambda.
  use_s3       = var.artifact_bucket != null
  artifact_key = coalesce(var.artifact_key, "${var.function_name}/lambda-registry-lambda.zip")
  # Every table the store may use: prefix + the payload's table name.
  table_arns = "arn:${data.aws_partition.current.partition}:dynamodb:${var.region}:${data.aws_caller_identity.current.account_id}:table/${var.table_prefix}*"
}

# Created here, not by Lambda, so that retention applies and destroy removes it.
resource "aws_cloudwatch_log_group" "registry" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "registry" {
  name               = "${var.function_name}-role"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

# Least privilege: exactly the calls the DynamoDB store makes
# (src/store/dynamodb.c), on the prefixed tables only, and the log group.
data "aws_iam_policy_document" "registry" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.registry.arn}:*"]
  }

  statement {
    sid = "RegistryTables"
    actions = [
      "dynamodb:CreateTable",
      "dynamodb:DeleteItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Scan",
      "dynamodb:UpdateItem",
    ]
    resources = [local.table_arns]
  }

  # The health check (GET /healthz) lists at most one table name;
  # ListTables has no resource-level permissions.
  statement {
    sid       = "HealthCheck"
    actions   = ["dynamodb:ListTables"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "registry" {
  name   = "${var.function_name}-policy"
  role   = aws_iam_role.registry.id
  policy = data.aws_iam_policy_document.registry.json
}

# Uploaded again whenever the zip changes (its hash is the source_hash).
# Lambda reads it with the deployer's rights: the role needs no S3 access.
resource "aws_s3_object" "package" {
  count       = local.use_s3 ? 1 : 0
  bucket      = var.artifact_bucket
  key         = local.artifact_key
  source      = local.package_path
  source_hash = filebase64sha256(local.package_path)
}

resource "aws_lambda_function" "registry" {
  function_name    = var.function_name
  description      = "lambda-registry: HAProxy service registry (custom runtime in C)"
  role             = aws_iam_role.registry.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  memory_size      = var.memory_size
  timeout          = var.timeout
  filename          = local.use_s3 ? null : local.package_path
  s3_bucket         = local.use_s3 ? aws_s3_object.package[0].bucket : null
  s3_key            = local.use_s3 ? aws_s3_object.package[0].key : null
  s3_object_version = local.use_s3 ? aws_s3_object.package[0].version_id : null
  source_code_hash  = filebase64sha256(local.package_path)

  environment {
    variables = {
      LAMBDA_REGISTRY_STORE         = "dynamodb:${var.table_prefix}"
      LAMBDA_REGISTRY_FRONTEND_BIND = var.frontend_bind
      LAMBDA_REGISTRY_AUTH          = var.auth
      LAMBDA_REGISTRY_ANSWER_FORMAT = var.answer_format
    }
  }

  # The log group and the role's rights exist before the first invocation.
  depends_on = [aws_cloudwatch_log_group.registry, aws_iam_role_policy.registry]
}
