# A customer's whole setup: the bucket that receives the audit log, the role
# the platform assumes to write into it, an SQS queue that announces every
# new object to a SIEM, and the destination itself.

data "auditexport_identity" "this" {}

data "aws_caller_identity" "current" {}

locals {
  # Event objects end in .ndjson.gz (format "ndjson", compression "gzip").
  # The notification below only announces these, so the SIEM never sees the
  # short-lived connection-test object written when the destination is
  # created or updated.
  object_suffix = ".ndjson.gz"
}

################################################################################
# Bucket
################################################################################

resource "aws_s3_bucket" "audit" {
  bucket = var.bucket_name
}

resource "aws_s3_bucket_public_access_block" "audit" {
  bucket = aws_s3_bucket.audit.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs disabled: the bucket owner owns every object. The destination then
# sends no ACL (acl = "none").
resource "aws_s3_bucket_ownership_controls" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# An upload in flight when the agent is killed is never completed: it is
# invisible to readers and this rule removes its parts.
resource "aws_s3_bucket_lifecycle_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "auditexport_bucket_policy" "this" {
  bucket        = aws_s3_bucket.audit.id
  prefix        = var.prefix
  principal_arn = aws_iam_role.delivery.arn

  deny_insecure_transport = true
}

resource "aws_s3_bucket_policy" "audit" {
  bucket = aws_s3_bucket.audit.id
  policy = data.auditexport_bucket_policy.this.json

  # Changing a bucket's policy while its public access block is being changed
  # can fail with OperationAborted: apply them one after the other.
  depends_on = [aws_s3_bucket_public_access_block.audit]
}

################################################################################
# Delivery role, assumed by the platform with your tenant's external id
################################################################################

data "auditexport_trust_policy" "this" {
  principal_arn = data.auditexport_identity.this.principal_arn
  external_id   = data.auditexport_identity.this.external_id
}

resource "aws_iam_role" "delivery" {
  name               = "auditexport-delivery"
  description        = "Assumed by the platform to deliver the audit log of tenant ${data.auditexport_identity.this.tenant}."
  assume_role_policy = data.auditexport_trust_policy.this.json
}

data "auditexport_role_policy" "this" {
  bucket = aws_s3_bucket.audit.id
  prefix = var.prefix
}

resource "aws_iam_role_policy" "delivery" {
  name   = "auditexport-delivery"
  role   = aws_iam_role.delivery.id
  policy = data.auditexport_role_policy.this.json
}

################################################################################
# New-object notifications for the SIEM: S3 -> SQS
################################################################################

resource "aws_sqs_queue" "notifications_dlq" {
  name                      = "${var.bucket_name}-notifications-dlq"
  message_retention_seconds = 1209600 # 14 days, the maximum
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "notifications" {
  name                       = "${var.bucket_name}-notifications"
  visibility_timeout_seconds = 300
  message_retention_seconds  = 1209600
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.notifications_dlq.arn
    maxReceiveCount     = 5
  })
}

data "aws_iam_policy_document" "notifications" {
  statement {
    sid       = "AllowS3ToSendNotifications"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.notifications.arn]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.audit.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "notifications" {
  queue_url = aws_sqs_queue.notifications.url
  policy    = data.aws_iam_policy_document.notifications.json
}

resource "aws_s3_bucket_notification" "audit" {
  bucket = aws_s3_bucket.audit.id

  queue {
    id            = "auditexport-objects"
    queue_arn     = aws_sqs_queue.notifications.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = "${var.prefix}/"
    filter_suffix = local.object_suffix
  }

  # S3 sends a test message when the notification is configured: the queue
  # must already accept messages from the bucket.
  depends_on = [aws_sqs_queue_policy.notifications]
}

################################################################################
# Read access for the SIEM: attach this policy to the principal your SIEM's
# S3/SQS connector uses (see the SIEM setup guide).
################################################################################

data "aws_iam_policy_document" "siem_reader" {
  statement {
    sid       = "ReadAuditObjects"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.audit.arn}/${var.prefix}/*"]
  }

  statement {
    sid       = "ListAuditPrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.audit.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.prefix}/*"]
    }
  }

  statement {
    sid = "ConsumeNotifications"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
    ]
    resources = [aws_sqs_queue.notifications.arn]
  }
}

resource "aws_iam_policy" "siem_reader" {
  name        = "auditexport-siem-reader"
  description = "Read the audit log objects under ${var.prefix}/ and consume their notifications."
  policy      = data.aws_iam_policy_document.siem_reader.json
}

################################################################################
# The destination
################################################################################

resource "auditexport_s3_destination" "this" {
  bucket   = aws_s3_bucket.audit.id
  region   = aws_s3_bucket.audit.region
  prefix   = var.prefix
  role_arn = aws_iam_role.delivery.arn

  interval    = var.interval
  format      = "ndjson"
  compression = "gzip"
  encryption  = "sse-s3"
  acl         = "none" # the bucket's ownership is BucketOwnerEnforced
  backfill    = "24h"
  enabled     = true

  # Creating the destination assumes the role and writes a test object: the
  # role's permissions, the bucket policy and the bucket's settings must be in
  # place first. Objects written before the notification exists would not be
  # announced to the SIEM.
  depends_on = [
    aws_iam_role_policy.delivery,
    aws_s3_bucket_policy.audit,
    aws_s3_bucket_ownership_controls.audit,
    aws_s3_bucket_server_side_encryption_configuration.audit,
    aws_s3_bucket_notification.audit,
  ]
}
