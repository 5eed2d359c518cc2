# Once a day at 05:00 UTC, only selected event types, encrypted with a
# customer managed KMS key. The role policy must then allow that key.

data "auditexport_role_policy" "kms" {
  bucket      = "acme-audit-logs"
  prefix      = "auditexport/security"
  kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
}

resource "aws_iam_role_policy" "kms" {
  name   = "auditexport-delivery-security"
  role   = "auditexport-delivery"
  policy = data.auditexport_role_policy.kms.json
}

resource "auditexport_s3_destination" "security" {
  bucket   = "acme-audit-logs"
  region   = "eu-west-1"
  prefix   = "auditexport/security"
  role_arn = "arn:aws:iam::111122223333:role/auditexport-delivery"

  daily_at    = "05:00"
  event_types = ["user.login", "user.login_failed", "api_key.created", "api_key.revoked"]

  encryption    = "sse-kms"
  kms_key_arn   = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  storage_class = "STANDARD_IA"

  # Split a day's events into objects of at most 64 MiB (compressed).
  max_object_bytes = 67108864

  depends_on = [aws_iam_role_policy.kms]
}
