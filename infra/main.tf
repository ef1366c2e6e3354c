data "aws_caller_identity" "current" {}

locals {
  # Bucket names are global: the account and region make them unique per environment.
  bucket_name = "${var.name_prefix}-${var.environment}-artifacts-${data.aws_caller_identity.current.account_id}-${var.region}"
  # Names known at plan time, so the plan (and its review) shows the automation rules in full.
  _names = {
    execution_role_arn       = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/${var.name_prefix}-${var.environment}-sagemaker-execution"
    model_package_group_name = "${var.name_prefix}-${var.environment}-models"
  }
}

module "artifact_bucket" {
  source = "./modules/artifact_bucket"

  bucket_name                        = local.bucket_name
  access_log_bucket                  = var.access_log_bucket
  deploying_account_ids              = var.deploying_account_ids
  enable_kms_encryption              = var.enable_kms_encryption
  force_destroy                      = var.bucket_force_destroy
  enable_eventbridge_notifications   = var.enable_automation
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
}

module "model_registry" {
  source = "./modules/model_registry"

  model_package_group_name = local._names.model_package_group_name
  deploying_account_ids    = var.deploying_account_ids
}

module "sagemaker_execution_role" {
  source = "./modules/sagemaker_execution_role"

  role_name                    = "${var.name_prefix}-${var.environment}-sagemaker-execution"
  bucket_arn                   = module.artifact_bucket.bucket_arn
  kms_key_arns                 = var.enable_kms_encryption ? [module.artifact_bucket.kms_key_arn] : []
  model_package_group_name     = module.model_registry.model_package_group_name
  pipeline_name                = "${var.name_prefix}-${var.environment}-pipeline"
  attach_sagemaker_full_access = var.attach_sagemaker_full_access
  permissions_boundary_arn     = var.permissions_boundary_arn
}

module "code_repository" {
  source = "./modules/code_repository"

  create_repository = var.create_code_repository
  repository_name   = "${var.name_prefix}-${var.environment}"
}

module "automation" {
  source = "./modules/automation"
  count  = var.enable_automation ? 1 : 0

  name_prefix   = "${var.name_prefix}-${var.environment}"
  environment   = var.environment
  pipeline_name = "${var.name_prefix}-${var.environment}-pipeline"
  # Names, not resource attributes: the rules' patterns are known at plan time.
  model_package_group_name = local._names.model_package_group_name
  bucket_arn               = "arn:aws:s3:::${local.bucket_name}"
  bucket_name              = local.bucket_name
  execution_role_arn       = local._names.execution_role_arn
  kms_key_arns             = var.enable_kms_encryption ? [module.artifact_bucket.kms_key_arn] : []
  permissions_boundary_arn = var.permissions_boundary_arn
  # Built from the name so the push rule's presence is known at plan time.
  code_repository_arn = var.create_code_repository ? "arn:aws:codecommit:${var.region}:${data.aws_caller_identity.current.account_id}:${var.name_prefix}-${var.environment}" : null

  agent_queue          = var.automation.local_agent ? {} : null
  build_pipeline       = var.automation.build_pipeline
  dataset_prefix       = var.automation.dataset_prefix
  drift_retraining     = var.automation.drift_retraining
  failure_notification = var.automation.failure_notification
  retraining_schedule  = var.automation.retraining_schedule
}

module "model_monitoring" {
  source = "./modules/model_monitoring"

  name                = "${var.name_prefix}-${var.environment}"
  endpoint_name       = "${var.name_prefix}-${var.environment}-endpoint"
  schedule_name       = "${var.name_prefix}-${var.environment}-endpoint-data-quality"
  monitored_features  = var.monitored_features
  drift_threshold     = var.drift_threshold
  alarm_subscriptions = var.alarm_subscriptions
}
