terraform {
  required_providers {
    auditexport = {
      source = "auditexport/auditexport"
    }
  }
}

# The manage token your platform issued for your tenant. Pass it with
# TF_VAR_auditexport_token, or leave the provider's token unset and export
# AUDITEXPORT_TOKEN instead.
variable "auditexport_token" {
  type      = string
  sensitive = true
}

provider "auditexport" {
  # The URL your platform gives you (or AUDITEXPORT_ENDPOINT).
  endpoint = "https://audit.example.com"
  token    = var.auditexport_token
}
