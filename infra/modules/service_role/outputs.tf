output "role_arn" {
  description = "ARN of the role (usable once its policy exists)."
  value       = aws_iam_role.this.arn
  depends_on  = [aws_iam_role_policy.this]
}

output "role_name" {
  description = "Name of the role."
  value       = aws_iam_role.this.name
}
