output "buildspecs" {
  description = "The buildspec of every CodeBuild project, by project key (build, deploy, run)."
  value       = local.buildspecs
}

output "codebuild_project_names" {
  description = "Names of the CodeBuild projects, by key (build, deploy, run)."
  value       = { for key, project in aws_codebuild_project.this : key => project.name }
}

output "codepipeline_name" {
  description = "Name of the delivery CodePipeline."
  value       = aws_codepipeline.this.name
}

output "delivery_bucket_name" {
  description = "Name of CodePipeline's artifact bucket."
  value       = module.artifacts.bucket_id
}

output "role_arns" {
  description = "ARNs of the roles, by key (codebuild, codepipeline, events-start-builds)."
  value       = { for key, role in module.role : key => role.role_arn }
}
