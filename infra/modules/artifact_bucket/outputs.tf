output "bucket_arn" {
  description = "ARN of the artifact bucket (known at plan time)."
  value       = "arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}"
}

output "bucket_id" {
  description = "Name of the artifact bucket."
  # The policy, versioning and encryption are part of what "the bucket is ready" means.
  value = aws_s3_bucket.this.id
  depends_on = [
    aws_s3_bucket_policy.this,
    aws_s3_bucket_public_access_block.this,
    aws_s3_bucket_server_side_encryption_configuration.this,
    aws_s3_bucket_versioning.this,
  ]
}

output "bucket_regional_domain_name" {
  description = "Regional domain name of the artifact bucket."
  value       = aws_s3_bucket.this.bucket_regional_domain_name
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the bucket; null when SSE-S3 is used."
  value       = try(aws_kms_key.this[0].arn, null)
}
