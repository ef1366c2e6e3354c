output "role_arn" {
  description = "ARN of the SageMaker execution role."
  # Callers use the role to run jobs; it is only usable once its policy exists.
  value      = aws_iam_role.this.arn
  depends_on = [aws_iam_role_policy.this, aws_iam_role_policy.kms]
}

output "role_name" {
  description = "Name of the SageMaker execution role."
  value       = aws_iam_role.this.name
}

output "role_policy_json" {
  description = "The least-privilege inline policy document, for review."
  value       = data.aws_iam_policy_document.this.json
}
