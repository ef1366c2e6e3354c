output "account_id" {
  description = "AWS account the stack lives in (123456789012 on the emulator)."
  value       = data.aws_caller_identity.current.account_id
}

output "automation_queue_url" {
  description = "SQS queue the local automation agent reads; null on AWS or without automation."
  value       = try(module.automation[0].agent_queue_url, null)
}

output "automation_rule_names" {
  description = "EventBridge rules of the automation module, by purpose; empty without automation."
  value       = try(module.automation[0].rule_names, {})
}

output "bucket_arn" {
  description = "ARN of the artifact bucket."
  value       = module.artifact_bucket.bucket_arn
}

output "bucket_name" {
  description = "Name of the artifact bucket: data, code, models and reports."
  value       = module.artifact_bucket.bucket_id
}

output "code_repository_clone_url_http" {
  description = "HTTPS clone URL of the CodeCommit repository; null when not created."
  value       = module.code_repository.clone_url_http
}

output "code_repository_clone_url_ssh" {
  description = "SSH clone URL of the CodeCommit repository; null when not created."
  value       = module.code_repository.clone_url_ssh
}

output "code_repository_name" {
  description = "Name of the CodeCommit repository; null when not created."
  value       = module.code_repository.repository_name
}

output "endpoint_names" {
  description = "SageMaker endpoint names, by stage: default (the environment's endpoint), staging and prod (the local target's stage endpoints)."
  value       = local.endpoint_names
}

output "environment" {
  description = "Environment name the stack was applied with."
  value       = var.environment
}

output "execution_role_arn" {
  description = "ARN of the SageMaker execution role the pipeline and its jobs run as."
  value       = module.sagemaker_execution_role.role_arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key of the artifact bucket; null when SSE-S3 is used."
  value       = module.artifact_bucket.kms_key_arn
}

output "model_package_group_arn" {
  description = "ARN of the model package group."
  value       = module.model_registry.model_package_group_arn
}

output "model_package_group_name" {
  description = "Name of the model package group the pipeline registers models in."
  value       = module.model_registry.model_package_group_name
}

output "monitoring_schedule_names" {
  description = "Data-quality monitoring schedule names, by the same keys as endpoint_names (the alarms' MonitoringSchedule dimension)."
  value       = local.monitoring_schedule_names
}

output "monitoring_topic_arn" {
  description = "SNS topic that model-monitoring alarms notify."
  value       = module.model_monitoring.topic_arn
}

output "name" {
  description = "Prefix of every resource name: <name_prefix>-<environment>."
  value       = local.name
}

output "name_prefix" {
  description = "Prefix of every resource name."
  value       = var.name_prefix
}

output "pipeline_name" {
  description = "Name of the SageMaker pipeline; the execution role is scoped to it."
  value       = local.pipeline_name
}

output "pipelines" {
  description = "Each pipeline's names, by key (var.pipelines): pipeline_name, base_job_prefix (its jobs' and artifacts' prefix), model_package_group_name and _arn, endpoint_names and monitoring_schedule_names by stage. The first pipeline's are also the top-level outputs."
  value = {
    for p in local.pipeline_list : p.key => {
      pipeline_name             = p.pipeline_name
      base_job_prefix           = p.base_job_prefix
      model_package_group_name  = p.model_package_group_name
      model_package_group_arn   = p.key == local.first_pipeline.key ? module.model_registry.model_package_group_arn : module.other_model_registries[p.key].model_package_group_arn
      endpoint_names            = p.endpoint_names
      monitoring_schedule_names = p.monitoring_schedule_names
    }
  }

  # SageMaker names endpoints and monitoring schedules in at most 63 characters; a long
  # prefix, environment and key together can exceed that.
  precondition {
    condition     = length(local._long_names) == 0
    error_message = "These endpoint or monitoring schedule names are longer than SageMaker's 63 characters: ${join(", ", local._long_names)}. Shorten the pipeline's key, name_prefix or environment."
  }
}

output "region" {
  description = "AWS region of the stack."
  value       = var.region
}
