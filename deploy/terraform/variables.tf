variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "function_name" {
  description = "Name of the Lambda function; also names the role, the API and the log group."
  type        = string
  default     = "lambda-registry"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,56}$", var.function_name))
    error_message = "function_name: 1 to 56 characters of A-Z a-z 0-9 _ - (the role name adds a suffix)."
  }
}

variable "table_prefix" {
  description = "Prefix of the DynamoDB tables (prefix + the payload's table). The function may touch only tables with this prefix."
  type        = string
  default     = "lambda-registry-"

  validation {
    # Not empty: an empty prefix would grant access to every table.
    condition     = can(regex("^[A-Za-z0-9_.-]{1,200}$", var.table_prefix))
    error_message = "table_prefix: 1 to 200 characters of A-Z a-z 0-9 _ - . (not empty)."
  }
}

variable "memory_size" {
  description = "Memory of the function in MB (CPU grows with it)."
  type        = number
  default     = 256

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size: 128 to 10240 MB."
  }
}

variable "architecture" {
  description = "x86_64 or arm64. Must match the machine that built the package."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture: x86_64 or arm64."
  }
}

variable "timeout" {
  description = "Function timeout in seconds. The first call on a new table creates it and waits for it; API Gateway gives up after 29 s."
  type        = number
  default     = 25
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the function's logs."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days: one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ...)."
  }
}

variable "package_path" {
  description = "The zip built by `make lambda-package`; null: build/lambda-registry-lambda.zip of this repository."
  type        = string
  default     = null
}

variable "frontend_bind" {
  description = "bind line of the generated HAProxy frontend."
  type        = string
  default     = ":80"
}

variable "auth" {
  description = "--auth of the function: \"auto\" and \"required\" ask API Gateway requests for a bearer token (lambda-registry token create), \"off\" does not. Direct invocations are authorized by IAM."
  type        = string
  default     = "auto"

  validation {
    condition     = contains(["auto", "required", "off"], var.auth)
    error_message = "auth is auto, required or off."
  }
}

variable "answer_format" {
  description = "What POST /generate answers through API Gateway: \"text\" (the config), or \"json-string\" (the config as one JSON string, as the first version answered, for hosts that still run cosmonaut)."
  type        = string
  default     = "text"

  validation {
    condition     = contains(["text", "json-string"], var.answer_format)
    error_message = "answer_format is text or json-string."
  }
}

variable "stage_name" {
  description = "API Gateway stage, the first path segment of the invoke URL."
  type        = string
  default     = "v1"
}

variable "api_key_enabled" {
  description = "Require an API key (x-api-key header) on POST /generate, with a usage plan."
  type        = bool
  default     = false
}

variable "throttle_rate_limit" {
  description = "Usage plan: steady requests per second (with api_key_enabled)."
  type        = number
  default     = 50
}

variable "throttle_burst_limit" {
  description = "Usage plan: burst of requests (with api_key_enabled)."
  type        = number
  default     = 100
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "artifact_bucket" {
  description = "S3 bucket to upload the Lambda zip to, as the first version's deployment did (null: the zip goes straight to Lambda, up to 50 MB). The bucket must be in var.region."
  type        = string
  default     = null

  validation {
    condition     = var.artifact_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.artifact_bucket))
    error_message = "artifact_bucket: an S3 bucket name (3 to 63 characters of a-z 0-9 . -)."
  }
}

variable "artifact_key" {
  description = "Object key of the zip in artifact_bucket (null: FUNCTION_NAME/lambda-registry-lambda.zip)."
  type        = string
  default     = null
}
