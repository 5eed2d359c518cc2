# Trust policy for the delivery role: lets the platform's delivery principal
# assume the role, only with your tenant's external id. Both default to the
# values of auditexport_identity.
data "auditexport_trust_policy" "this" {}

resource "aws_iam_role" "auditexport" {
  name               = "auditexport-delivery"
  assume_role_policy = data.auditexport_trust_policy.this.json
}

# The same document with the principal and the external id given explicitly.
data "auditexport_identity" "current" {}

data "auditexport_trust_policy" "explicit" {
  principal_arn = data.auditexport_identity.current.principal_arn
  external_id   = data.auditexport_identity.current.external_id
}
