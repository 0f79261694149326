# lambda-registry on AWS Lambda behind API Gateway. Terraform >= 1.5 and the
# AWS provider >= 5; credentials come from the provider's usual chain
# (environment, shared config/SSO, instance role), never from these files.
terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ Application = "lambda-registry" }, var.tags)
  }
}
