data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  _arn_prefix = "arn:${data.aws_partition.current.partition}"
  _account    = data.aws_caller_identity.current.account_id
  _region     = data.aws_region.current.name
  _sagemaker  = "${local._arn_prefix}:sagemaker:${local._region}:${local._account}"
  _codecommit = var.build_pipeline.codecommit_repository != null
  _stages     = [var.build_pipeline.staging_stage, var.build_pipeline.production_stage]

  pipeline_arn     = "${local._sagemaker}:pipeline/${var.pipeline_name}"
  codepipeline_arn = "${local._arn_prefix}:codepipeline:${local._region}:${local._account}:${var.name}-delivery"
  _repository_arn  = local._codecommit ? "${local._arn_prefix}:codecommit:${local._region}:${local._account}:${var.build_pipeline.codecommit_repository}" : null
  _build_log_group = "/aws/codebuild/${var.name}"
  _log_group_arn   = "${local._arn_prefix}:logs:${local._region}:${local._account}:log-group:${local._build_log_group}"
  _project_arns = {
    for name in keys(local.buildspecs) :
    name => "${local._arn_prefix}:codebuild:${local._region}:${local._account}:project/${var.name}-${name}"
  }
  _delivery_bucket_arn = "${local._arn_prefix}:s3:::${var.delivery_bucket_name}"
}

# --- buildspecs --------------------------------------------------------------------------
# Every buildspec runs the invoke tasks a person runs; no logic lives only here. Values an
# event sets (DATA_URI, MODEL_VERSION, STAGE) are checked against a strict pattern first and
# then passed quoted, each as one argument: never through word splitting.

locals {
  _install = "scripts/install"
  # bash: the checks use [[ =~ ]]; printf %q shows a refused value without running it.
  _data_uri_pattern = "^s3://${var.bucket_name}/${var.dataset_prefix}[A-Za-z0-9][A-Za-z0-9._/-]*$"
  _check_data_uri   = "if [[ -n \"$${DATA_URI:-}\" && ! \"$DATA_URI\" =~ ${local._data_uri_pattern} ]]; then printf 'DATA_URI must be an object under s3://${var.bucket_name}/${var.dataset_prefix} named with letters, digits, . _ - and /; refusing to run on %q\\n' \"$DATA_URI\" >&2; exit 1; fi"
  _check_stage      = "if [[ ! \"$${STAGE:-}\" =~ ^(${join("|", local._stages)})$ ]]; then printf 'STAGE must be ${join(" or ", local._stages)}; refusing to deploy to %q\\n' \"$${STAGE:-}\" >&2; exit 1; fi"
  _check_version    = "if [[ -n \"$${MODEL_VERSION:-}\" && ! \"$MODEL_VERSION\" =~ ^[1-9][0-9]{0,8}$ ]]; then printf 'MODEL_VERSION must be a whole number (a model package version); refusing to deploy %q\\n' \"$MODEL_VERSION\" >&2; exit 1; fi"

  buildspecs = {
    # Fast tests, then a pipeline run on AWS (a push to main).
    build = {
      version = "0.2"
      env     = { shell = "bash" }
      phases = {
        install = { commands = [local._install] }
        build = { commands = [
          ".venv/bin/invoke test --tier fast",
          ".venv/bin/invoke pipeline-run --target aws --env \"$MLOPS_ENV\" --trigger commit --no-wait",
        ] }
      }
    }
    # Deploy an Approved version. MODEL_VERSION empty: the latest Approved one.
    # STAGE is staging or prod: the stage's own Terraform environment.
    deploy = {
      version = "0.2"
      env     = { shell = "bash" }
      phases = {
        install = { commands = [local._install] }
        build = { commands = [
          local._check_stage,
          local._check_version,
          ".venv/bin/invoke deploy --target aws --stage \"$STAGE\" $${MODEL_VERSION:+--version \"$MODEL_VERSION\"}",
        ] }
      }
    }
    # A pipeline run on new data (DATA_URI from the S3 event).
    run = {
      version = "0.2"
      env     = { shell = "bash" }
      phases = {
        install = { commands = [local._install] }
        build = { commands = [
          local._check_data_uri,
          ".venv/bin/invoke pipeline-run --target aws --env \"$MLOPS_ENV\" --trigger new-data $${DATA_URI:+--data \"$DATA_URI\"} --no-wait",
        ] }
      }
    }
  }
}

# --- roles: one pattern (modules/service_role) for CodeBuild, CodePipeline, EventBridge ---

locals {
  # What each build writes in the artifact bucket (see the README's prefix map):
  # pipeline-run stages datasets/ and uploads <pipeline>/code/; deploy records deployments/.
  _bucket_writes = ["datasets/", "${var.pipeline_name}/code/", "deployments/"]
  _bucket_reads  = ["datasets/", "${var.pipeline_name}/", "deployments/"]

  roles = {
    codebuild = {
      service     = "codebuild.amazonaws.com"
      description = "Runs this project's invoke tasks in CodeBuild: tests, pipeline-run, deploy."
      policy_name = "invoke-tasks"
      policy      = data.aws_iam_policy_document.codebuild.json
    }
    codepipeline = {
      service     = "codepipeline.amazonaws.com"
      description = "Runs the ${var.name}-delivery CodePipeline: its source and its builds only."
      policy_name = "delivery"
      policy      = data.aws_iam_policy_document.codepipeline.json
    }
    events-start-builds = {
      service     = "events.amazonaws.com"
      description = "EventBridge starts this project's deploy and run builds and its CodePipeline."
      policy_name = "start-builds"
      policy      = data.aws_iam_policy_document.events_start_builds.json
    }
  }
}

module "role" {
  source   = "../service_role"
  for_each = local.roles

  name                     = "${var.name}-${each.key}"
  description              = each.value.description
  service                  = each.value.service
  policy_name              = each.value.policy_name
  policy_json              = each.value.policy
  permissions_boundary_arn = var.permissions_boundary_arn
  tags                     = var.tags
}

data "aws_iam_policy_document" "codebuild" {
  statement {
    sid       = "BuildLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [local._log_group_arn, "${local._log_group_arn}:*"]
  }

  statement {
    sid       = "ArtifactBucketLocation"
    actions   = ["s3:GetBucketLocation"]
    resources = [var.bucket_arn]
  }

  statement {
    sid       = "ArtifactBucketListThesePrefixes"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for prefix in local._bucket_reads : "${prefix}*"]
    }
  }

  statement {
    sid       = "ArtifactObjectsRead"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for prefix in local._bucket_reads : "${var.bucket_arn}/${prefix}*"]
  }

  statement {
    sid       = "ArtifactObjectsWrite"
    actions   = ["s3:PutObject"]
    resources = [for prefix in local._bucket_writes : "${var.bucket_arn}/${prefix}*"]
  }

  # The source CodePipeline hands to the builds.
  statement {
    sid       = "DeliveryArtifactsRead"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${local._delivery_bucket_arn}/*"]
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
      "${local._sagemaker}:model-package-group/${var.model_package_group_name}",
      "${local._sagemaker}:model-package/${var.model_package_group_name}/*",
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
      "${local._sagemaker}:endpoint/${var.name}-*",
      "${local._sagemaker}:endpoint-config/${var.name}-*",
      "${local._sagemaker}:model/${var.name}-*",
    ]
  }

  # deploy's UpdateEndpoint names rollback alarms (deployment guardrails); SageMaker checks
  # that the caller may describe them. Metric alarms allow resource-level scoping; the
  # project's alarms are named <name>-... (composite alarms would need "*").
  statement {
    sid       = "DescribeRollbackAlarms"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = ["${local._arn_prefix}:cloudwatch:${local._region}:${local._account}:alarm:${var.name}-*"]
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
    for_each = var.enable_kms_encryption ? [1] : []

    content {
      sid       = "DeliveryArtifactsKey"
      actions   = ["kms:Decrypt"]
      resources = [module.artifacts.kms_key_arn]
    }
  }

  dynamic "statement" {
    for_each = var.build_pipeline.state_bucket_arn != null ? [var.build_pipeline.state_bucket_arn] : []

    content {
      sid       = "TerraformStateRead"
      actions   = ["s3:GetObject", "s3:ListBucket"]
      resources = [statement.value, "${statement.value}/*"]
    }
  }

  # Builds that EventBridge starts check the source out themselves (see the targets below).
  dynamic "statement" {
    for_each = local._codecommit ? [local._repository_arn] : []

    content {
      sid       = "SourcePull"
      actions   = ["codecommit:GitPull"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = local._codecommit ? [] : [var.build_pipeline.connection_arn]

    content {
      sid = "SourceConnection"
      actions = [
        "codeconnections:GetConnection",
        "codeconnections:GetConnectionToken",
        "codeconnections:UseConnection",
        "codestar-connections:GetConnection",
        "codestar-connections:GetConnectionToken",
        "codestar-connections:UseConnection",
      ]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "codepipeline" {
  statement {
    sid       = "DeliveryArtifactsBucket"
    actions   = ["s3:GetBucketLocation", "s3:GetBucketVersioning"]
    resources = [local._delivery_bucket_arn]
  }

  statement {
    sid       = "DeliveryArtifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${local._delivery_bucket_arn}/*"]
  }

  statement {
    sid       = "RunTheseBuilds"
    actions   = ["codebuild:BatchGetBuilds", "codebuild:StartBuild"]
    resources = [for name in sort(keys(local.buildspecs)) : local._project_arns[name]]
  }

  dynamic "statement" {
    for_each = var.enable_kms_encryption ? [1] : []

    content {
      sid       = "DeliveryArtifactsKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [module.artifacts.kms_key_arn]
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
    for_each = local._codecommit ? [] : [var.build_pipeline.connection_arn]

    content {
      sid       = "ConnectionSource"
      actions   = ["codeconnections:UseConnection", "codestar-connections:UseConnection"]
      resources = [statement.value]
    }
  }
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

# --- CodePipeline's artifact store: a bucket of its own ------------------------------------
# Apart from the artifact bucket, so nothing the SageMaker execution role may write (training
# and processing jobs) can replace the source the staging and prod stages build from.

module "artifacts" {
  source = "../artifact_bucket"

  bucket_name           = var.delivery_bucket_name
  access_log_bucket     = var.access_log_bucket
  enable_kms_encryption = var.enable_kms_encryption
  # Copies of the source, rewritten by every execution: nothing here is worth keeping.
  force_destroy                      = true
  noncurrent_version_expiration_days = 30
  tags                               = var.tags
}

# --- CodeBuild projects and the CodePipeline ------------------------------------------------

resource "aws_codebuild_project" "this" {
  for_each = local.buildspecs

  name           = "${var.name}-${each.key}"
  description    = "invoke tasks: ${each.key}"
  service_role   = module.role["codebuild"].role_arn
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
    buildspec = yamlencode(each.value)
  }
}

resource "aws_codepipeline" "this" {
  name          = "${var.name}-delivery"
  role_arn      = module.role["codepipeline"].role_arn
  pipeline_type = "V2"
  tags          = var.tags

  artifact_store {
    type     = "S3"
    location = module.artifacts.bucket_id

    dynamic "encryption_key" {
      for_each = var.enable_kms_encryption ? [module.artifacts.kms_key_arn] : []

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
        PollForSourceChanges = "false" # the commit rule starts it
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

# --- EventBridge starts the builds: approval -> deploy to staging, new data -> run, push -> CodePipeline.
# The projects' source is CODEPIPELINE, which StartBuild cannot fetch on its own: a build
# EventBridge starts overrides it with the repository's branch, and has no artifacts.

locals {
  _direct_sources = {
    codecommit = {
      sourceTypeOverride     = "CODECOMMIT"
      sourceLocationOverride = "https://git-codecommit.${local._region}.amazonaws.com/v1/repos/${coalesce(var.build_pipeline.codecommit_repository, "-")}"
      sourceVersion          = "refs/heads/${var.build_pipeline.branch}"
      artifactsOverride      = { type = "NO_ARTIFACTS" }
    }
    connection = {
      sourceTypeOverride     = "GITHUB"
      sourceLocationOverride = "https://github.com/${coalesce(var.build_pipeline.connection_repository, "-")}.git"
      sourceVersion          = var.build_pipeline.branch
      sourceAuthOverride     = { type = "CODECONNECTIONS", resource = coalesce(var.build_pipeline.connection_arn, "-") }
      artifactsOverride      = { type = "NO_ARTIFACTS" }
    }
  }
  _direct_source = local._direct_sources[local._codecommit ? "codecommit" : "connection"]
  # StartBuild's request body; <placeholders> are EventBridge's (jsonencode escapes < and >).
  start_build_inputs = {
    deploy_staging = merge(local._direct_source, {
      environmentVariablesOverride = [
        { name = "MODEL_VERSION", value = "<version>", type = "PLAINTEXT" },
        { name = "STAGE", value = var.build_pipeline.staging_stage, type = "PLAINTEXT" },
      ]
    })
    run_on_new_data = merge(local._direct_source, {
      environmentVariablesOverride = [
        { name = "DATA_URI", value = "s3://${var.bucket_name}/<key>", type = "PLAINTEXT" },
      ]
    })
  }
  _input_templates = {
    for key, body in local.start_build_inputs :
    key => replace(replace(jsonencode(body), "\\u003c", "<"), "\\u003e", ">")
  }
}

resource "aws_cloudwatch_event_target" "deploy_staging" {
  rule      = var.rule_names.approval_deploy
  target_id = "deploy-staging"
  arn       = aws_codebuild_project.this["deploy"].arn
  role_arn  = module.role["events-start-builds"].role_arn

  input_transformer {
    input_paths    = { version = "$.detail.ModelPackageVersion" }
    input_template = local._input_templates.deploy_staging
  }
}

resource "aws_cloudwatch_event_target" "run_on_new_data" {
  rule      = var.rule_names.new_data_retraining
  target_id = "run-on-new-data"
  arn       = aws_codebuild_project.this["run"].arn
  role_arn  = module.role["events-start-builds"].role_arn

  input_transformer {
    input_paths    = { key = "$.detail.object.key" }
    input_template = local._input_templates.run_on_new_data
  }
}

resource "aws_cloudwatch_event_target" "start_delivery" {
  count = local._codecommit && var.rule_names.commit_build != null ? 1 : 0

  rule      = var.rule_names.commit_build
  target_id = "start-delivery"
  arn       = aws_codepipeline.this.arn
  role_arn  = module.role["events-start-builds"].role_arn
}
