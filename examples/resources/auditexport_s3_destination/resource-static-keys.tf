# Static access keys, for accounts where a cross-account role is not an
# option. The secret is write-only: it is sent to the platform on create and
# update but never stored in this resource's state or plan (Terraform 1.11 or
# later). An ephemeral variable keeps it out of the state entirely. Increase
# secret_access_key_wo_version to send a new secret after a key rotation.

variable "delivery_access_key_id" {
  type = string
}

variable "delivery_secret_access_key" {
  type      = string
  sensitive = true
  ephemeral = true
}

resource "auditexport_s3_destination" "static_keys" {
  bucket = "acme-audit-logs"
  region = "eu-west-1"
  prefix = "auditexport"

  access_key_id                = var.delivery_access_key_id
  secret_access_key_wo         = var.delivery_secret_access_key
  secret_access_key_wo_version = 1

  interval = "1h"
}
