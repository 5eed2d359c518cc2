# The platform's delivery principal and your tenant's external id. Both are
# known before any destination exists, so the role that trusts them can be
# created first.
data "auditexport_identity" "this" {}

output "delivery_principal_arn" {
  value = data.auditexport_identity.this.principal_arn
}

output "external_id" {
  value = data.auditexport_identity.this.external_id
}

output "tenant" {
  value = data.auditexport_identity.this.tenant
}
