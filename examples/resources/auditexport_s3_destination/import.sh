# A destination is imported by its id (dst_ followed by 20 hex digits), as
# listed by the platform's API (GET /v1/destinations).
terraform import auditexport_s3_destination.example dst_0123456789abcdef0123
