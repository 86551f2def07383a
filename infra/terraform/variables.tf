variable "region" {
  description = "AWS region for the bucket and keys (UK data: eu-west-2, London)."
  type        = string
  default     = "eu-west-2"
}

variable "bucket_name" {
  description = "Globally unique name of the documents bucket, e.g. handover-documents-<council>-prod."
  type        = string
}

variable "key_prefix" {
  description = "Key prefix the portal stores under (the path of PORTAL_STORAGE_URL), with a trailing slash."
  type        = string
  default     = "documents/"
  validation {
    condition     = can(regex("^[a-z0-9-]+/$", var.key_prefix))
    error_message = "key_prefix is lower-case letters, digits and dashes followed by a slash, e.g. documents/."
  }
}

variable "noncurrent_version_days" {
  description = <<-EOT
    Days an overwritten or deleted object's old version is kept before S3 removes it. This is part
    of the window in which a backup taken before a crypto-shred could still read that document
    (infra/README.md, "Backups"): keep it no longer than your database backups are kept.
  EOT
  type        = number
  default     = 35
}

variable "kms_deletion_window_days" {
  description = "Waiting period before a scheduled KMS key deletion happens (7 to 30)."
  type        = number
  default     = 30
}

variable "create_wrapping_key" {
  description = "Also create a KMS key for PORTAL_KEY_WRAPPING=aws-kms (document keys wrapped in KMS, not the local keyring)."
  type        = bool
  default     = true
}

variable "portal_role_name" {
  description = "Name of an existing IAM role the portal runs as (EC2 instance profile, ECS task role); empty: attach the policy yourself."
  type        = string
  default     = ""
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
