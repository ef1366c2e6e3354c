data "aws_caller_identity" "current" {}

locals {
  # Every resource name starts with this; the outputs carry the names the tasks use.
  name = "${var.name_prefix}-${var.environment}"
  # Bucket names are global: the account and region make them unique per environment.
  bucket_name          = "${local.name}-artifacts-${data.aws_caller_identity.current.account_id}-${var.region}"
  delivery_bucket_name = "${local.name}-builds-${data.aws_caller_identity.current.account_id}-${var.region}"
  # Each pipeline's names, in var.pipelines' order. The first keeps the environment's own
  # (<name>-pipeline, <name>-models, ...): a stack applied before there were several pipelines
  # keeps its resources. The others carry their key. A pipeline's name is also the prefix of
  # its jobs' names and artifacts (base_job_prefix, as AWS's project templates use it), so
  # the execution role's S3 prefixes cover a template's outputs. Each pipeline has the
  # environment's endpoint and, locally, a stage's own beside it, each with one data-quality
  # monitoring schedule.
  _pipeline_list = [
    for index, pipeline in var.pipelines : {
      key   = pipeline.key
      _stem = index == 0 ? local.name : "${local.name}-${pipeline.key}"
      # The first pipeline's drift alarms default to var.monitored_features.
      monitored_features = distinct(pipeline.monitored_features != null ? pipeline.monitored_features : index == 0 ? var.monitored_features : [])
    }
  ]
  pipeline_list = [
    for pipeline in local._pipeline_list : {
      key                      = pipeline.key
      pipeline_name            = "${pipeline._stem}-pipeline"
      base_job_prefix          = "${pipeline._stem}-pipeline"
      model_package_group_name = "${pipeline._stem}-models"
      endpoint_names = {
        default = "${pipeline._stem}-endpoint"
        staging = "${pipeline._stem}-staging-endpoint"
        prod    = "${pipeline._stem}-prod-endpoint"
      }
      monitoring_schedule_names = {
        default = "${pipeline._stem}-endpoint-data-quality"
        staging = "${pipeline._stem}-staging-endpoint-data-quality"
        prod    = "${pipeline._stem}-prod-endpoint-data-quality"
      }
      monitored_features = pipeline.monitored_features
    }
  ]
  first_pipeline = local.pipeline_list[0]
  _long_names = [
    for name in flatten([for p in local.pipeline_list : concat(values(p.endpoint_names), values(p.monitoring_schedule_names))]) : name if length(name) > 63
  ]
  # The first pipeline's names: the automation rules, delivery builds and top-level outputs.
  pipeline_name             = local.first_pipeline.pipeline_name
  endpoint_names            = local.first_pipeline.endpoint_names
  monitoring_schedule_names = local.first_pipeline.monitoring_schedule_names
  # Where Model Monitor's built-in container publishes its metrics, as the SageMaker SDK's own
  # dashboards query them (sagemaker/dashboard/*_dashboard.py); alarms and IAM use these.
  metric_namespaces = {
    data  = "aws/sagemaker/Endpoints/data-metrics"
    model = "aws/sagemaker/Endpoints/model-metrics"
  }
  # Names known at plan time, so the plan (and its review) shows the automation rules in full.
  _names = {
    execution_role_name      = "${local.name}-sagemaker-execution"
    execution_role_arn       = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/${local.name}-sagemaker-execution"
    model_package_group_name = local.first_pipeline.model_package_group_name
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
  # Deploying accounts create models from each pipeline's two prefixes and read nothing else.
  deploying_account_read_prefixes = flatten([for p in local.pipeline_list : ["${p.pipeline_name}/models/", "${p.pipeline_name}/code/"]])
}

# The first pipeline's model package group keeps the address it had before there were
# several pipelines (moved blocks cannot name a variable key), so an applied stack keeps it.
module "model_registry" {
  source = "./modules/model_registry"

  model_package_group_name = local._names.model_package_group_name
  deploying_account_ids    = var.deploying_account_ids
}

# Every other pipeline's group, by key: adding, removing or reordering the others never
# touches the first's.
module "other_model_registries" {
  source   = "./modules/model_registry"
  for_each = { for p in slice(local.pipeline_list, 1, length(local.pipeline_list)) : p.key => p }

  model_package_group_name = each.value.model_package_group_name
  description              = "Model versions registered by the ${each.value.pipeline_name} SageMaker pipeline."
  deploying_account_ids    = var.deploying_account_ids
}

module "sagemaker_execution_role" {
  source = "./modules/sagemaker_execution_role"

  role_name                    = local._names.execution_role_name
  bucket_arn                   = module.artifact_bucket.bucket_arn
  kms_key_arns                 = var.enable_kms_encryption ? [module.artifact_bucket.kms_key_arn] : []
  metric_namespaces            = values(local.metric_namespaces)
  model_package_group_names    = [for p in local.pipeline_list : p.model_package_group_name]
  pipeline_names               = [for p in local.pipeline_list : p.pipeline_name]
  rollback_alarm_name_prefix   = "${local.name}-"
  attach_sagemaker_full_access = var.attach_sagemaker_full_access
  permissions_boundary_arn     = var.permissions_boundary_arn
}

module "code_repository" {
  source = "./modules/code_repository"

  create_repository = var.create_code_repository
  repository_name   = local.name
}

module "automation" {
  source = "./modules/automation"
  count  = var.enable_automation ? 1 : 0

  name          = local.name
  pipeline_name = local.pipeline_name
  # Names, not resource attributes: the rules' patterns are known at plan time.
  model_package_group_name = local._names.model_package_group_name
  bucket_name              = local.bucket_name
  permissions_boundary_arn = var.permissions_boundary_arn
  # Built from the name so the push rule's presence is known at plan time.
  code_repository_arn = var.create_code_repository ? "arn:aws:codecommit:${var.region}:${data.aws_caller_identity.current.account_id}:${local.name}" : null
  commit_branch       = try(var.automation.build_pipeline.branch, "main")

  agent_queue          = var.automation.local_agent ? {} : null
  dataset_prefix       = var.automation.dataset_prefix
  drift_retraining     = var.automation.drift_retraining
  failure_notification = var.automation.failure_notification
  retraining_schedule  = var.automation.retraining_schedule
}

# CodeBuild projects and the CodePipeline that run the invoke tasks on AWS; the automation
# rules start them. None on the local target (the emulator cannot run builds).
module "delivery" {
  source = "./modules/delivery"
  count  = var.enable_automation && var.automation.build_pipeline != null ? 1 : 0

  name                     = local.name
  environment              = var.environment
  pipeline_name            = local.pipeline_name
  model_package_group_name = local._names.model_package_group_name
  bucket_arn               = "arn:aws:s3:::${local.bucket_name}"
  bucket_name              = local.bucket_name
  dataset_prefix           = var.automation.dataset_prefix
  delivery_bucket_name     = local.delivery_bucket_name
  access_log_bucket        = var.access_log_bucket
  enable_kms_encryption    = var.enable_kms_encryption
  execution_role_arn       = local._names.execution_role_arn
  kms_key_arns             = var.enable_kms_encryption ? [module.artifact_bucket.kms_key_arn] : []
  permissions_boundary_arn = var.permissions_boundary_arn
  build_pipeline           = var.automation.build_pipeline
  rule_names               = module.automation[0].rule_names
}

# Where the builds lived before the delivery module (an applied stack keeps them).
moved {
  from = module.automation[0].aws_codebuild_project.this
  to   = module.delivery[0].aws_codebuild_project.this
}

moved {
  from = module.automation[0].aws_codepipeline.this[0]
  to   = module.delivery[0].aws_codepipeline.this
}

moved {
  from = module.automation[0].aws_iam_role.codebuild[0]
  to   = module.delivery[0].module.role["codebuild"].aws_iam_role.this
}

moved {
  from = module.automation[0].aws_iam_role_policy.codebuild[0]
  to   = module.delivery[0].module.role["codebuild"].aws_iam_role_policy.this
}

moved {
  from = module.automation[0].aws_iam_role.codepipeline[0]
  to   = module.delivery[0].module.role["codepipeline"].aws_iam_role.this
}

moved {
  from = module.automation[0].aws_iam_role_policy.codepipeline[0]
  to   = module.delivery[0].module.role["codepipeline"].aws_iam_role_policy.this
}

moved {
  from = module.automation[0].aws_iam_role.events_start_builds[0]
  to   = module.delivery[0].module.role["events-start-builds"].aws_iam_role.this
}

moved {
  from = module.automation[0].aws_iam_role_policy.events_start_builds[0]
  to   = module.delivery[0].module.role["events-start-builds"].aws_iam_role_policy.this
}

moved {
  from = module.automation[0].aws_cloudwatch_event_target.deploy_staging[0]
  to   = module.delivery[0].aws_cloudwatch_event_target.deploy_staging
}

moved {
  from = module.automation[0].aws_cloudwatch_event_target.run_on_new_data[0]
  to   = module.delivery[0].aws_cloudwatch_event_target.run_on_new_data
}

moved {
  from = module.automation[0].aws_cloudwatch_event_target.start_delivery[0]
  to   = module.delivery[0].aws_cloudwatch_event_target.start_delivery[0]
}

module "model_monitoring" {
  source = "./modules/model_monitoring"

  name             = local.name
  metric_namespace = local.metric_namespaces.data
  # The first pipeline's alarms keep the addresses they had before there were several.
  monitored_endpoints = [
    for p in local.pipeline_list : {
      key           = p.key
      endpoint_name = p.endpoint_names.default
      schedule_name = p.monitoring_schedule_names.default
      features      = p.monitored_features
    }
  ]
  drift_threshold     = var.drift_threshold
  alarm_subscriptions = var.alarm_subscriptions
}
