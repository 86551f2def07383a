# The documents bucket of a Handover deployment on AWS, and its KMS keys (SECURITY.md section 5):
# private with every Block Public Access switch on and ACLs disabled, TLS-only, default SSE-KMS with
# a customer-managed rotating key, versioned, incomplete multipart uploads removed after a day, and
# an IAM policy that lets the portal do exactly what it needs under its key prefix.
#
# The portal also encrypts every document itself (a data key per document, wrapped by the keyring
# or by the wrapping key below), so S3's encryption is the second layer, not the only one.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  s3_service   = "s3.${var.region}.amazonaws.com"
  objects_arn  = "${aws_s3_bucket.documents.arn}/${var.key_prefix}*"
}

# --- KMS -------------------------------------------------------------------------------------------

# Server-side encryption of the bucket. Usable only through S3 in this account and region.
resource "aws_kms_key" "bucket" {
  description             = "Handover documents bucket ${var.bucket_name}: S3 default encryption"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.bucket_key.json
}

resource "aws_kms_alias" "bucket" {
  name          = "alias/${var.bucket_name}-s3"
  target_key_id = aws_kms_key.bucket.key_id
}

data "aws_iam_policy_document" "bucket_key" {
  # The account administers the key through IAM (without this the key could become unmanageable).
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }
  # Principals of this account that IAM allows may use it, but only by way of S3.
  statement {
    sid       = "UseOnlyThroughS3"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:CallerAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.s3_service]
    }
  }
}

# Wrapping of the portal's per-document data keys (PORTAL_KEY_WRAPPING=aws-kms:?key_id=...).
# Crypto-shredding deletes a wrapped key from the database; this key is never deleted for that.
resource "aws_kms_key" "wrapping" {
  count                   = var.create_wrapping_key ? 1 : 0
  description             = "Handover ${var.bucket_name}: wraps per-document data keys"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.wrapping_key.json
}

resource "aws_kms_alias" "wrapping" {
  count         = var.create_wrapping_key ? 1 : 0
  name          = "alias/${var.bucket_name}-wrapping"
  target_key_id = aws_kms_key.wrapping[0].key_id
}

data "aws_iam_policy_document" "wrapping_key" {
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }
}

# --- the bucket ------------------------------------------------------------------------------------

resource "aws_s3_bucket" "documents" {
  bucket = var.bucket_name
  # Emptying a bucket of children's records must be a deliberate act, not a side effect of destroy.
  force_destroy = false
}

resource "aws_s3_bucket_public_access_block" "documents" {
  bucket                  = aws_s3_bucket.documents.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "documents" {
  bucket = aws_s3_bucket.documents.id
  rule {
    object_ownership = "BucketOwnerEnforced" # ACLs disabled
  }
}

resource "aws_s3_bucket_versioning" "documents" {
  bucket = aws_s3_bucket.documents.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "documents" {
  bucket = aws_s3_bucket.documents.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.bucket.arn
    }
    # One KMS call per object instead of per request: cheaper, and well under KMS's request quota.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "documents" {
  bucket     = aws_s3_bucket.documents.id
  depends_on = [aws_s3_bucket_versioning.documents]

  # An upload cut off mid-way (a killed instance, a lost connection) leaves parts that cost money
  # and hold ciphertext; the portal aborts them itself when it can, this catches the rest.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # Versions of deleted (crypto-shredded or purged) objects go after noncurrent_version_days, and
  # the delete markers left behind with them.
  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }
}

resource "aws_s3_bucket_policy" "documents" {
  bucket     = aws_s3_bucket.documents.id
  policy     = data.aws_iam_policy_document.bucket.json
  depends_on = [aws_s3_bucket_public_access_block.documents]
}

data "aws_iam_policy_document" "bucket" {
  # Plain http is refused for everyone, and so are TLS versions below 1.2.
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.documents.arn, "${aws_s3_bucket.documents.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  statement {
    sid       = "DenyOldTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.documents.arn, "${aws_s3_bucket.documents.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
  # An object may be written only under the bucket's own key (or with no header: the default applies).
  statement {
    sid       = "DenyOtherEncryption"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.documents.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEqualsIfExists"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["aws:kms"]
    }
  }
  statement {
    sid       = "DenyOtherKmsKey"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.documents.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEqualsIfExists"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = [aws_kms_key.bucket.arn]
    }
  }
}

# --- what the portal may do ----------------------------------------------------------------------------

resource "aws_iam_policy" "portal" {
  name        = "${var.bucket_name}-portal"
  description = "Handover portal: objects under ${var.key_prefix} in ${var.bucket_name}, and its KMS keys"
  policy      = data.aws_iam_policy_document.portal.json
}

data "aws_iam_policy_document" "portal" {
  # Listing (the storage sweep, the readiness probe, finding unfinished uploads), under the prefix only.
  # ListBucket also makes HeadObject answer 404 rather than 403 for a missing key.
  statement {
    sid       = "ListUnderPrefix"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.documents.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.key_prefix, "${var.key_prefix}*"]
    }
  }
  statement {
    sid = "ObjectsUnderPrefix"
    actions = [
      "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    ]
    resources = [local.objects_arn]
  }
  # S3 calls KMS on the portal's behalf for the bucket's default encryption.
  statement {
    sid       = "BucketKeyThroughS3"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.bucket.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.s3_service]
    }
  }
  # Wrapping per-document data keys; always with an encryption context naming the document.
  dynamic "statement" {
    for_each = var.create_wrapping_key ? [1] : []
    content {
      sid       = "WrapDocumentKeys"
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo"]
      resources = [aws_kms_key.wrapping[0].arn]
      condition {
        test     = "Null"
        variable = "kms:EncryptionContextKeys"
        values   = ["false"]
      }
    }
  }
  dynamic "statement" {
    for_each = var.create_wrapping_key ? [1] : []
    content {
      sid       = "DescribeWrappingKey"
      actions   = ["kms:DescribeKey"]
      resources = [aws_kms_key.wrapping[0].arn]
    }
  }
}

resource "aws_iam_role_policy_attachment" "portal" {
  count      = var.portal_role_name == "" ? 0 : 1
  role       = var.portal_role_name
  policy_arn = aws_iam_policy.portal.arn
}
