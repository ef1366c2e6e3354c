output "model_package_group_arn" {
  description = "ARN of the model package group."
  value       = aws_sagemaker_model_package_group.this.arn
}

output "model_package_group_name" {
  description = "Name of the model package group."
  value       = aws_sagemaker_model_package_group.this.model_package_group_name
}

output "model_package_group_policy" {
  description = "The group's resource policy sharing it with the deploying accounts, or null when none are given."
  value       = length(var.deploying_account_ids) > 0 ? data.aws_iam_policy_document.sharing[0].json : null
}
