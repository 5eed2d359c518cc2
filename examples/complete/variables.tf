variable "auditexport_endpoint" {
  description = "URL of your platform's audit export endpoint, as given by the platform."
  type        = string
}

variable "auditexport_token" {
  description = "Manage token for your tenant, as issued by the platform."
  type        = string
  sensitive   = true
}

variable "aws_region" {
  description = "AWS region of the bucket and the queue."
  type        = string
  default     = "eu-west-1"
}

variable "bucket_name" {
  description = "Name of the S3 bucket that receives the audit log. Bucket names are global: pick a unique one."
  type        = string
}

variable "prefix" {
  description = "Key prefix under which audit objects are written, without leading or trailing slash."
  type        = string
  default     = "auditexport"
}

variable "interval" {
  description = "How often objects are delivered: 1m, 5m, 15m, 1h, 2h, 4h, 6h, 12h or 24h."
  type        = string
  default     = "15m"
}

variable "tags" {
  description = "Tags added to every AWS resource."
  type        = map(string)
  default     = {}
}
