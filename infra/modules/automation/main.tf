data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  _arn_prefix   = "arn:${data.aws_partition.current.partition}"
  _account      = data.aws_caller_identity.current.account_id
  _region       = data.aws_region.current.name
  pipeline_arn  = "${local._arn_prefix}:sagemaker:${local._region}:${local._account}:pipeline/${var.pipeline_name}"
  _agent        = var.agent_queue != null
  _build        = var.build_pipeline != null
  _codecommit   = local._build ? try(var.build_pipeline.codecommit_repository, null) != null : false
  _drift        = var.drift_retraining != null ? var.drift_retraining.enabled : false
  _failure      = var.failure_notification != null
  _schedule     = var.retraining_schedule != null
  _commit_rule  = var.code_repository_arn != null
  _rule_prefix  = "${var.name_prefix}-"
  _build_branch = local._build ? var.build_pipeline.branch : "main"

  # EventBridge patterns: exactly the events AWS emits (see the module README for samples).
  event_patterns = {
    approval_deploy = {
      source        = ["aws.sagemaker"]
      "detail-type" = ["SageMaker Model Package State Change"]
      detail = {
        ModelPackageGroupName = [var.model_package_group_name]
        ModelApprovalStatus   = ["Approved"]
      }
    }
    commit_build = {
      source        = ["aws.codecommit"]
      "detail-type" = ["CodeCommit Repository State Change"]
      resources     = compact([var.code_repository_arn])
      detail = {
        event         = ["referenceCreated", "referenceUpdated"]
        referenceType = ["branch"]
        referenceName = [local._build_branch]
      }
    }
    new_data_retraining = {
      source        = ["aws.s3"]
      "detail-type" = ["Object Created"]
      detail = {
        bucket = { name = [var.bucket_name] }
        object = { key = [{ prefix = var.dataset_prefix }] }
      }
    }
    execution_failed = {
      source        = ["aws.sagemaker"]
      "detail-type" = ["SageMaker Model Building Pipeline Execution Status Change"]
      detail = {
        pipelineArn                    = [local.pipeline_arn]
        currentPipelineExecutionStatus = ["Failed"]
      }
    }
    drift_retraining = {
      source        = ["aws.cloudwatch"]
      "detail-type" = ["CloudWatch Alarm State Change"]
      detail = {
        alarmName = [{ prefix = var.drift_retraining != null ? var.drift_retraining.alarm_name_prefix : "-" }]
        state     = { value = ["ALARM"] }
      }
    }
  }

  # Which rules exist, and which of them the local agent also receives.
  _pattern_rules = {
    approval_deploy     = true
    commit_build        = local._commit_rule
    new_data_retraining = true
    execution_failed    = local._failure
    drift_retraining    = local._drift
  }
  pattern_rules = { for key, on in local._pattern_rules : key => "${local._rule_prefix}${replace(key, "_", "-")}" if on }
  # The agent acts on everything but failures (those go to the SNS topic only).
  agent_rules = local._agent ? { for key, name in local.pattern_rules : key => name if key != "execution_failed" } : {}
  # Rules that start the SageMaker pipeline directly (no event data needed).
  pipeline_target_rules = merge(
    local._schedule ? { scheduled_retraining = aws_cloudwatch_event_rule.scheduled_retraining[0].name } : {},
    local._drift ? { drift_retraining = aws_cloudwatch_event_rule.pattern["drift_retraining"].name } : {},
  )
}

# --- event rules ------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "pattern" {
  for_each = local.pattern_rules

  name          = each.value
  description   = "mlops automation: ${replace(each.key, "_", " ")} (${var.pipeline_name})"
  event_pattern = jsonencode(local.event_patterns[each.key])
  state         = "ENABLED"
  tags          = var.tags
}

resource "aws_cloudwatch_event_rule" "scheduled_retraining" {
  count = local._schedule ? 1 : 0

  name                = "${local._rule_prefix}scheduled-retraining"
  description         = "mlops automation: scheduled retraining of ${var.pipeline_name}"
  schedule_expression = var.retraining_schedule.expression
  state               = "ENABLED"
  tags                = var.tags
}

# --- targets: SageMaker pipeline ---------------------------------------------------------

resource "aws_cloudwatch_event_target" "start_pipeline" {
  for_each = local.pipeline_target_rules

  rule      = each.value
  target_id = "start-pipeline"
  arn       = local.pipeline_arn
  role_arn  = aws_iam_role.events_start_pipeline[0].arn

  sagemaker_pipeline_target {
    dynamic "pipeline_parameter_list" {
      for_each = each.key == "scheduled_retraining" ? var.retraining_schedule.parameters : {}

      content {
        name  = pipeline_parameter_list.key
        value = pipeline_parameter_list.value
      }
    }
  }

  depends_on = [aws_cloudwatch_event_rule.pattern, aws_cloudwatch_event_rule.scheduled_retraining]
}

data "aws_iam_policy_document" "events_assume" {
  statement {
    sid     = "EventBridgeAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local._account]
    }
  }
}

resource "aws_iam_role" "events_start_pipeline" {
  count = length(local.pipeline_target_rules) > 0 ? 1 : 0

  name                 = "${var.name_prefix}-events-start-pipeline"
  description          = "EventBridge starts the ${var.pipeline_name} pipeline, nothing else."
  assume_role_policy   = data.aws_iam_policy_document.events_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "events_start_pipeline" {
  statement {
    sid       = "StartThisPipeline"
    actions   = ["sagemaker:StartPipelineExecution"]
    resources = [local.pipeline_arn]
  }
}

resource "aws_iam_role_policy" "events_start_pipeline" {
  count = length(local.pipeline_target_rules) > 0 ? 1 : 0

  name   = "start-pipeline"
  role   = aws_iam_role.events_start_pipeline[0].id
  policy = data.aws_iam_policy_document.events_start_pipeline.json
}

# --- targets: SNS (failed executions) ----------------------------------------------------

resource "aws_cloudwatch_event_target" "failure_topic" {
  count = local._failure ? 1 : 0

  rule      = aws_cloudwatch_event_rule.pattern["execution_failed"].name
  target_id = "failure-topic"
  arn       = var.failure_notification.topic_arn
}

# --- new data: the artifact bucket sends its events to EventBridge -------------------------
# (the artifact_bucket module's enable_eventbridge_notifications, switched on with this module)

# --- the local agent's queue -------------------------------------------------------------

resource "aws_sqs_queue" "agent" {
  count = local._agent ? 1 : 0

  name                              = "${var.name_prefix}-automation-agent"
  message_retention_seconds         = 1209600
  visibility_timeout_seconds        = 900
  receive_wait_time_seconds         = 1
  sqs_managed_sse_enabled           = var.agent_queue.kms_master_key_id == null ? true : null
  kms_master_key_id                 = var.agent_queue.kms_master_key_id
  kms_data_key_reuse_period_seconds = var.agent_queue.kms_master_key_id == null ? null : 300
  tags                              = var.tags
}

data "aws_iam_policy_document" "agent_queue" {
  count = local._agent ? 1 : 0

  statement {
    sid       = "TheseRulesSend"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.agent[0].arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for key in sort(keys(local.agent_rules)) : aws_cloudwatch_event_rule.pattern[key].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "agent" {
  count = local._agent ? 1 : 0

  queue_url = aws_sqs_queue.agent[0].id
  policy    = data.aws_iam_policy_document.agent_queue[0].json
}

# Each rule delivers {"rule": <its name>, "event": <the event as AWS emitted it>}, so the
# agent knows which rule fired without matching the event again.
resource "aws_cloudwatch_event_target" "agent" {
  for_each = local.agent_rules

  rule      = aws_cloudwatch_event_rule.pattern[each.key].name
  target_id = "local-automation-agent"
  arn       = aws_sqs_queue.agent[0].arn

  input_transformer {
    input_template = "{\"rule\": \"${each.value}\", \"event\": <aws.events.event.json>}"
  }
}

# --- builds: CodeBuild projects and a CodePipeline ---------------------------------------
# Every buildspec runs the invoke tasks a person runs; no logic lives only here.

locals {
  _install  = "scripts/install"
  _env_flag = "--target aws --env $MLOPS_ENV"
  buildspecs = {
    # Fast tests, then a pipeline run on AWS (a push to main).
    build = {
      version = "0.2"
      phases = {
        install = { commands = [local._install] }
        build = { commands = [
          ".venv/bin/invoke test --tier fast",
          ".venv/bin/invoke pipeline-run ${local._env_flag} --no-wait",
        ] }
      }
    }
    # Deploy an Approved version. MODEL_VERSION empty: the latest Approved one.
    # STAGE is staging or prod: the stage's own Terraform environment.
    deploy = {
      version = "0.2"
      phases = {
        install = { commands = [local._install] }
        build = { commands = [
          ".venv/bin/invoke deploy --target aws --stage $STAGE $${MODEL_VERSION:+--version $MODEL_VERSION}",
        ] }
      }
    }
    # A pipeline run on new data (DATA_URI from the S3 event).
    run = {
      version = "0.2"
      phases = {
        install = { commands = [local._install] }
        build = { commands = [
          ".venv/bin/invoke pipeline-run ${local._env_flag} $${DATA_URI:+--data $DATA_URI} --no-wait",
        ] }
      }
    }
  }
  _build_projects = local._build ? toset(keys(local.buildspecs)) : toset([])
  _project_arns = {
    for name in keys(local.buildspecs) :
    name => "${local._arn_prefix}:codebuild:${local._region}:${local._account}:project/${var.name_prefix}-${name}"
  }
  codepipeline_arn  = "${local._arn_prefix}:codepipeline:${local._region}:${local._account}:${var.name_prefix}-delivery"
  _repository_arn   = local._codecommit ? "${local._arn_prefix}:codecommit:${local._region}:${local._account}:${var.build_pipeline.codecommit_repository}" : null
  _build_log_group  = "/aws/codebuild/${var.name_prefix}"
  _log_group_arn    = "${local._arn_prefix}:logs:${local._region}:${local._account}:log-group:${local._build_log_group}"
  _pipeline_prefix  = "${local._arn_prefix}:sagemaker:${local._region}:${local._account}"
  _artifacts_prefix = "codepipeline/${var.name_prefix}"
}

data "aws_iam_policy_document" "codebuild_assume" {
  statement {
    sid     = "CodeBuildAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["codebuild.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local._account]
    }
  }
}

resource "aws_iam_role" "codebuild" {
  count = local._build ? 1 : 0

  name                 = "${var.name_prefix}-codebuild"
  description          = "Runs this project's invoke tasks in CodeBuild: tests, pipeline-run, deploy."
  assume_role_policy   = data.aws_iam_policy_document.codebuild_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "codebuild" {
  statement {
    sid       = "BuildLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [local._log_group_arn, "${local._log_group_arn}:*"]
  }

  statement {
    sid       = "ArtifactBucketList"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketVersions"]
    resources = [var.bucket_arn]
  }

  statement {
    sid       = "ArtifactObjects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${var.bucket_arn}/*"]
  }

  statement {
    sid = "PipelineUpsertAndRun"
    actions = [
      "sagemaker:CreatePipeline",
      "sagemaker:DescribePipeline",
      "sagemaker:DescribePipelineExecution",
      "sagemaker:ListPipelineExecutionSteps",
      "sagemaker:ListPipelineExecutions",
      "sagemaker:StartPipelineExecution",
      "sagemaker:UpdatePipeline",
    ]
    resources = [local.pipeline_arn, "${local.pipeline_arn}/*"]
  }

  statement {
    sid = "RegistryRead"
    actions = [
      "sagemaker:DescribeModelPackage",
      "sagemaker:ListModelPackages",
    ]
    resources = [
      "${local._pipeline_prefix}:model-package-group/${var.model_package_group_name}",
      "${local._pipeline_prefix}:model-package/${var.model_package_group_name}/*",
    ]
  }

  statement {
    sid = "DeployEndpoint"
    actions = [
      "sagemaker:AddTags",
      "sagemaker:CreateEndpoint",
      "sagemaker:CreateEndpointConfig",
      "sagemaker:CreateModel",
      "sagemaker:DeleteEndpointConfig",
      "sagemaker:DeleteModel",
      "sagemaker:DescribeEndpoint",
      "sagemaker:DescribeEndpointConfig",
      "sagemaker:DescribeModel",
      "sagemaker:UpdateEndpoint",
    ]
    resources = [
      "${local._pipeline_prefix}:endpoint/${var.name_prefix}-*",
      "${local._pipeline_prefix}:endpoint-config/${var.name_prefix}-*",
      "${local._pipeline_prefix}:model/${var.name_prefix}-*",
    ]
  }

  statement {
    sid       = "PassExecutionRoleToSageMaker"
    actions   = ["iam:PassRole"]
    resources = [var.execution_role_arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }

  dynamic "statement" {
    for_each = length(var.kms_key_arns) > 0 ? [1] : []

    content {
      sid       = "ArtifactKey"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
      resources = var.kms_key_arns
    }
  }

  dynamic "statement" {
    for_each = try(var.build_pipeline.state_bucket_arn, null) != null ? [var.build_pipeline.state_bucket_arn] : []

    content {
      sid       = "TerraformStateRead"
      actions   = ["s3:GetObject", "s3:ListBucket"]
      resources = [statement.value, "${statement.value}/*"]
    }
  }

  dynamic "statement" {
    for_each = local._codecommit ? [local._repository_arn] : []

    content {
      sid       = "SourcePull"
      actions   = ["codecommit:GitPull"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "codebuild" {
  count = local._build ? 1 : 0

  name   = "invoke-tasks"
  role   = aws_iam_role.codebuild[0].id
  policy = data.aws_iam_policy_document.codebuild.json
}

resource "aws_codebuild_project" "this" {
  for_each = local._build_projects

  name           = "${var.name_prefix}-${each.key}"
  description    = "invoke tasks: ${each.key}"
  service_role   = aws_iam_role.codebuild[0].arn
  build_timeout  = each.key == "deploy" ? 60 : 120
  encryption_key = length(var.kms_key_arns) > 0 ? var.kms_key_arns[0] : null
  tags           = var.tags

  artifacts {
    type = "CODEPIPELINE"
  }

  environment {
    compute_type                = var.build_pipeline.compute_type
    image                       = var.build_pipeline.image
    type                        = "LINUX_CONTAINER"
    image_pull_credentials_type = "CODEBUILD"
    privileged_mode             = false

    environment_variable {
      name  = "MLOPS_ENV"
      value = var.environment
    }

    environment_variable {
      name  = "STAGE"
      value = var.build_pipeline.staging_stage
    }
  }

  logs_config {
    cloudwatch_logs {
      group_name = local._build_log_group
    }
  }

  source {
    type      = "CODEPIPELINE"
    buildspec = yamlencode(local.buildspecs[each.key])
  }
}

data "aws_iam_policy_document" "codepipeline_assume" {
  statement {
    sid     = "CodePipelineAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["codepipeline.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local._account]
    }
  }
}

resource "aws_iam_role" "codepipeline" {
  count = local._build ? 1 : 0

  name                 = "${var.name_prefix}-codepipeline"
  description          = "Runs the ${var.name_prefix}-delivery CodePipeline: its source and its builds only."
  assume_role_policy   = data.aws_iam_policy_document.codepipeline_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "codepipeline" {
  statement {
    sid       = "PipelineArtifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${var.bucket_arn}/${local._artifacts_prefix}/*"]
  }

  statement {
    sid       = "RunTheseBuilds"
    actions   = ["codebuild:BatchGetBuilds", "codebuild:StartBuild"]
    resources = [for name in sort(keys(local.buildspecs)) : local._project_arns[name]]
  }

  dynamic "statement" {
    for_each = length(var.kms_key_arns) > 0 ? [1] : []

    content {
      sid       = "ArtifactKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = var.kms_key_arns
    }
  }

  dynamic "statement" {
    for_each = local._codecommit ? [local._repository_arn] : []

    content {
      sid = "CodeCommitSource"
      actions = [
        "codecommit:GetBranch",
        "codecommit:GetCommit",
        "codecommit:GetUploadArchiveStatus",
        "codecommit:UploadArchive",
      ]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = local._build && !local._codecommit ? [var.build_pipeline.connection_arn] : []

    content {
      sid       = "ConnectionSource"
      actions   = ["codeconnections:UseConnection", "codestar-connections:UseConnection"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "codepipeline" {
  count = local._build ? 1 : 0

  name   = "delivery"
  role   = aws_iam_role.codepipeline[0].id
  policy = data.aws_iam_policy_document.codepipeline.json
}

resource "aws_codepipeline" "this" {
  count = local._build ? 1 : 0

  name          = "${var.name_prefix}-delivery"
  role_arn      = aws_iam_role.codepipeline[0].arn
  pipeline_type = "V2"
  tags          = var.tags

  artifact_store {
    type     = "S3"
    location = var.bucket_name

    dynamic "encryption_key" {
      for_each = length(var.kms_key_arns) > 0 ? [var.kms_key_arns[0]] : []

      content {
        id   = encryption_key.value
        type = "KMS"
      }
    }
  }

  stage {
    name = "Source"

    action {
      name             = "Source"
      category         = "Source"
      owner            = "AWS"
      provider         = local._codecommit ? "CodeCommit" : "CodeStarSourceConnection"
      version          = "1"
      output_artifacts = ["source"]
      configuration = local._codecommit ? {
        RepositoryName       = var.build_pipeline.codecommit_repository
        BranchName           = var.build_pipeline.branch
        PollForSourceChanges = "false" # the commit rule below starts it
        } : {
        ConnectionArn    = var.build_pipeline.connection_arn
        FullRepositoryId = var.build_pipeline.connection_repository
        BranchName       = var.build_pipeline.branch
      }
    }
  }

  stage {
    name = "Build"

    action {
      name            = "TestAndRun"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source"]
      configuration   = { ProjectName = aws_codebuild_project.this["build"].name }
    }
  }

  stage {
    name = "Staging"

    action {
      name            = "DeployStaging"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source"]
      configuration   = { ProjectName = aws_codebuild_project.this["deploy"].name }
    }
  }

  stage {
    name = "Approval"

    action {
      name     = "PromoteToProduction"
      category = "Approval"
      owner    = "AWS"
      provider = "Manual"
      version  = "1"
    }
  }

  stage {
    name = "Production"

    action {
      name            = "DeployProduction"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source"]
      configuration = {
        ProjectName          = aws_codebuild_project.this["deploy"].name
        EnvironmentVariables = jsonencode([{ name = "STAGE", value = var.build_pipeline.production_stage, type = "PLAINTEXT" }])
      }
    }
  }
}

# EventBridge starts the builds: approval -> deploy to staging, new data -> run, push -> CodePipeline.

resource "aws_iam_role" "events_start_builds" {
  count = local._build ? 1 : 0

  name                 = "${var.name_prefix}-events-start-builds"
  description          = "EventBridge starts this project's deploy and run builds and its CodePipeline."
  assume_role_policy   = data.aws_iam_policy_document.events_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "events_start_builds" {
  statement {
    sid       = "StartTheseBuilds"
    actions   = ["codebuild:StartBuild"]
    resources = [local._project_arns["deploy"], local._project_arns["run"]]
  }

  statement {
    sid       = "StartThisCodePipeline"
    actions   = ["codepipeline:StartPipelineExecution"]
    resources = [local.codepipeline_arn]
  }
}

resource "aws_iam_role_policy" "events_start_builds" {
  count = local._build ? 1 : 0

  name   = "start-builds"
  role   = aws_iam_role.events_start_builds[0].id
  policy = data.aws_iam_policy_document.events_start_builds.json
}

resource "aws_cloudwatch_event_target" "deploy_staging" {
  count = local._build ? 1 : 0

  rule      = aws_cloudwatch_event_rule.pattern["approval_deploy"].name
  target_id = "deploy-staging"
  arn       = aws_codebuild_project.this["deploy"].arn
  role_arn  = aws_iam_role.events_start_builds[0].arn

  input_transformer {
    input_paths    = { version = "$.detail.ModelPackageVersion" }
    input_template = "{\"environmentVariablesOverride\": [{\"name\": \"MODEL_VERSION\", \"value\": \"<version>\", \"type\": \"PLAINTEXT\"}, {\"name\": \"STAGE\", \"value\": \"${var.build_pipeline.staging_stage}\", \"type\": \"PLAINTEXT\"}]}"
  }
}

resource "aws_cloudwatch_event_target" "run_on_new_data" {
  count = local._build ? 1 : 0

  rule      = aws_cloudwatch_event_rule.pattern["new_data_retraining"].name
  target_id = "run-on-new-data"
  arn       = aws_codebuild_project.this["run"].arn
  role_arn  = aws_iam_role.events_start_builds[0].arn

  input_transformer {
    input_paths    = { bucket = "$.detail.bucket.name", key = "$.detail.object.key" }
    input_template = "{\"environmentVariablesOverride\": [{\"name\": \"DATA_URI\", \"value\": \"s3://<bucket>/<key>\", \"type\": \"PLAINTEXT\"}]}"
  }
}

resource "aws_cloudwatch_event_target" "start_delivery" {
  count = local._build && local._codecommit && local._commit_rule ? 1 : 0

  rule      = aws_cloudwatch_event_rule.pattern["commit_build"].name
  target_id = "start-delivery"
  arn       = aws_codepipeline.this[0].arn
  role_arn  = aws_iam_role.events_start_builds[0].arn
}
