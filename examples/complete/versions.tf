terraform {
  # Write-only attributes (secret_access_key_wo) need Terraform 1.11.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
    auditexport = {
      source = "auditexport/auditexport"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = var.tags
  }
}

provider "auditexport" {
  endpoint = var.auditexport_endpoint
  token    = var.auditexport_token
}
