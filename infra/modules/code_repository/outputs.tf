output "clone_url_http" {
  description = "HTTPS clone URL; null when the repository is not created."
  value       = try(aws_codecommit_repository.this[0].clone_url_http, null)
}

output "clone_url_ssh" {
  description = "SSH clone URL; null when the repository is not created."
  value       = try(aws_codecommit_repository.this[0].clone_url_ssh, null)
}

output "repository_arn" {
  description = "ARN of the repository; null when it is not created."
  value       = try(aws_codecommit_repository.this[0].arn, null)
}

output "repository_name" {
  description = "Name of the repository; null when it is not created."
  value       = try(aws_codecommit_repository.this[0].repository_name, null)
}
