output "bucket_name" {
  value = aws_s3_bucket.documents.bucket
}

output "bucket_kms_key_arn" {
  value = aws_kms_key.bucket.arn
}

output "wrapping_kms_key_arn" {
  value = var.create_wrapping_key ? aws_kms_key.wrapping[0].arn : null
}

output "portal_policy_arn" {
  description = "Attach to the portal's role (or set portal_role_name)."
  value       = aws_iam_policy.portal.arn
}

output "portal_storage_url" {
  description = "PORTAL_STORAGE_URL for /etc/handover/handover.env."
  value       = "s3://${aws_s3_bucket.documents.bucket}/${trimsuffix(var.key_prefix, "/")}?region=${var.region}"
}

output "portal_key_wrapping" {
  description = "PORTAL_KEY_WRAPPING for /etc/handover/handover.env (if the wrapping key was created)."
  value       = var.create_wrapping_key ? "aws-kms:?key_id=${aws_kms_key.wrapping[0].arn}&region=${var.region}" : null
}
