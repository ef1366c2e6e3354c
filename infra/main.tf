data "aws_caller_identity" "current" {}

module "artifact_bucket" {
  source = "./modules/artifact_bucket"

  # Bucket names are global: the account and region make them unique per environment.
  bucket_name                        = "${var.name_prefix}-${var.environment}-artifacts-${data.aws_caller_identity.current.account_id}-${var.region}"
  access_log_bucket                  = var.access_log_bucket
  deploying_account_ids              = var.deploying_account_ids
  enable_kms_encryption              = var.enable_kms_encryption
  force_destroy                      = var.bucket_force_destroy
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
}

module "model_registry" {
  source = "./modules/model_registry"

  model_package_group_name = "${var.name_prefix}-${var.environment}-models"
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
