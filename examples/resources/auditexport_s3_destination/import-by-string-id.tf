import {
  to = auditexport_s3_destination.example
  id = "dst_0123456789abcdef0123"
}
