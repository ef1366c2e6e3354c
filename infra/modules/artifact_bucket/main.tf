data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  _bucket_arn           = "arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}"
  _deploying_principals = [for id in var.deploying_account_ids : "arn:${data.aws_partition.current.partition}:iam::${id}:root"]
}

resource "aws_kms_key" "this" {
  count = var.enable_kms_encryption ? 1 : 0

  description             = "Encrypts the objects of s3://${var.bucket_name}"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_in_days
  policy                  = data.aws_iam_policy_document.kms[0].json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  count = var.enable_kms_encryption ? 1 : 0

  name          = "alias/${var.bucket_name}"
  target_key_id = aws_kms_key.this[0].key_id
}

# The account-root statement delegates key use to IAM policies (AWS's default key
# policy); S3 may use the key only on behalf of this account and this bucket.
data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:In a key policy "*" is this key only; the account-root statement is AWS's default, which hands control to IAM policies.
  #checkov:skip=CKV_AWS_356:In a key policy "*" is this key only, not every resource.
  #checkov:skip=CKV_AWS_109:The account root administers its own key; IAM policies decide who else may use it.
  count = var.enable_kms_encryption ? 1 : 0

  statement {
    sid       = "AccountAdministersKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  # The deploying accounts may decrypt (read) artifacts, and only through S3 in this region.
  dynamic "statement" {
    for_each = length(var.deploying_account_ids) > 0 ? [1] : []

    content {
      sid       = "DeployingAccountsDecryptThroughS3"
      actions   = ["kms:Decrypt", "kms:DescribeKey"]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = local._deploying_principals
      }

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${data.aws_region.current.name}.amazonaws.com"]
      }

      # With S3 Bucket Keys the context is the bucket, not the object: the bucket policy
      # narrows what they read to prefixes.
      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:aws:s3:arn"
        values   = [local._bucket_arn]
      }
    }
  }
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Artifacts are rebuilt from code and data in git; cross-region replication is a cost decision left to the platform team.
  #checkov:skip=CKV2_AWS_62:Object events go to EventBridge through aws_s3_bucket_notification.this when enable_eventbridge_notifications is on (the automation module); checkov does not follow the conditional resource.
  #checkov:skip=CKV_AWS_18:Access logs need a second bucket per environment; enable with var.access_log_bucket where an organisation log bucket exists.
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

# Object events go to EventBridge only; rules there decide what happens.
resource "aws_s3_bucket_notification" "this" {
  count = var.enable_eventbridge_notifications ? 1 : 0

  bucket      = aws_s3_bucket.this.id
  eventbridge = true
}

resource "aws_s3_bucket_logging" "this" {
  count = var.access_log_bucket == null ? 0 : 1

  bucket        = aws_s3_bucket.this.id
  target_bucket = var.access_log_bucket
  target_prefix = "s3/${var.bucket_name}/"
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.enable_kms_encryption ? "aws:kms" : "AES256"
      kms_master_key_id = var.enable_kms_encryption ? aws_kms_key.this[0].arn : null
    }
    bucket_key_enabled = var.enable_kms_encryption
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# The ARN is spelled out rather than read from the bucket so that the policy is
# known at plan time and shows up in full in `invoke plan` reviews.
data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}", "arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}/*"]

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
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}", "arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}/*"]

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

  # The deploying accounts (staging, prod) read model artifacts and inference code to
  # create their models (deploying_account_read_prefixes); they cannot list, write, delete
  # or read anything else (datasets, capture, reports).
  dynamic "statement" {
    for_each = length(var.deploying_account_ids) > 0 ? [1] : []

    content {
      sid       = "DeployingAccountsReadArtifacts"
      actions   = ["s3:GetObject", "s3:GetObjectVersion"]
      resources = [for prefix in var.deploying_account_read_prefixes : "${local._bucket_arn}/${prefix}*"]

      principals {
        type        = "AWS"
        identifiers = local._deploying_principals
      }
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json

  # A policy on a bucket whose public access block is still being written can be
  # rejected as public; order them.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  #checkov:skip=CKV_AWS_300:The rule aborts uploads bucket-wide; in plan JSON the empty filter {} expands to null fields, which the check mistakes for a scoped filter.
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }

  # Lifecycle rules on an unversioned bucket would not see noncurrent versions.
  depends_on = [aws_s3_bucket_versioning.this]
}
