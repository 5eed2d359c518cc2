# Bucket policy: lets the delivery role write under the prefix, denies any
# request to the bucket that is not made over TLS and, for a bucket whose
# object ownership is BucketOwnerPreferred, requires the
# bucket-owner-full-control ACL on every delivered object.
resource "aws_s3_bucket" "audit" {
  bucket = "acme-audit-logs"
}

resource "aws_s3_bucket_ownership_controls" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    object_ownership = "BucketOwnerPreferred"
  }
}

data "auditexport_bucket_policy" "this" {
  bucket        = aws_s3_bucket.audit.id
  prefix        = "auditexport"
  principal_arn = "arn:aws:iam::111122223333:role/auditexport-delivery"

  deny_insecure_transport           = true
  require_bucket_owner_full_control = true
}

resource "aws_s3_bucket_policy" "audit" {
  bucket = aws_s3_bucket.audit.id
  policy = data.auditexport_bucket_policy.this.json
}
