# Permissions of the delivery role: write objects under the prefix (and use
# the KMS key, when one is given).
data "auditexport_role_policy" "this" {
  bucket      = "acme-audit-logs"
  prefix      = "auditexport"
  kms_key_arn = aws_kms_key.audit.arn
}

resource "aws_kms_key" "audit" {
  description = "Audit log bucket"
}

resource "aws_iam_role_policy" "auditexport" {
  name   = "auditexport-delivery"
  role   = "auditexport-delivery"
  policy = data.auditexport_role_policy.this.json
}
