# Delivery through a role in your account (recommended): the platform's
# delivery principal assumes the role with your tenant's external id.

data "auditexport_trust_policy" "this" {}

data "auditexport_role_policy" "this" {
  bucket = "acme-audit-logs"
  prefix = "auditexport"
}

resource "aws_iam_role" "auditexport" {
  name               = "auditexport-delivery"
  assume_role_policy = data.auditexport_trust_policy.this.json
}

resource "aws_iam_role_policy" "auditexport" {
  name   = "auditexport-delivery"
  role   = aws_iam_role.auditexport.id
  policy = data.auditexport_role_policy.this.json
}

resource "auditexport_s3_destination" "example" {
  bucket   = "acme-audit-logs"
  region   = "eu-west-1"
  prefix   = "auditexport"
  role_arn = aws_iam_role.auditexport.arn

  interval    = "15m"
  format      = "ndjson"
  compression = "gzip"
  encryption  = "sse-s3"
  backfill    = "24h"

  # Creating the destination writes a test object through the role, so the
  # role's permissions must exist first.
  depends_on = [aws_iam_role_policy.auditexport]
}
