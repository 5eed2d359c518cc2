output "tenant" {
  description = "Your tenant on the platform: the {tenant} segment of every object key."
  value       = data.auditexport_identity.this.tenant
}

output "destination_id" {
  description = "Id of the destination, for import and for the platform's API."
  value       = auditexport_s3_destination.this.id
}

output "destination_status" {
  description = "Delivery status of the destination as last read by Terraform."
  value       = auditexport_s3_destination.this.status
}

output "bucket_name" {
  value = aws_s3_bucket.audit.id
}

output "bucket_arn" {
  value = aws_s3_bucket.audit.arn
}

output "object_prefix" {
  description = "Key prefix of the audit objects, with its trailing slash."
  value       = "${var.prefix}/"
}

output "delivery_role_arn" {
  value = aws_iam_role.delivery.arn
}

output "notification_queue_url" {
  description = "The SQS queue URL to configure in the SIEM."
  value       = aws_sqs_queue.notifications.url
}

output "notification_queue_arn" {
  value = aws_sqs_queue.notifications.arn
}

output "notification_dead_letter_queue_arn" {
  value = aws_sqs_queue.notifications_dlq.arn
}

output "siem_reader_policy_arn" {
  description = "Managed policy to attach to the principal your SIEM reads with."
  value       = aws_iam_policy.siem_reader.arn
}
