data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  _sagemaker = "arn:${data.aws_partition.current.partition}:sagemaker:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
  _bucket    = var.bucket_arn
  # The artifact bucket by prefix (the README's prefix map): the jobs read their input data,
  # the pipelines' code and outputs and the endpoints' capture; they write the pipelines'
  # outputs (models, check results, baselines), the capture and monitoring reports.
  _pipeline_prefixes = [for name in var.pipeline_names : "${name}/"]
  _read_prefixes     = concat(["datasets/"], local._pipeline_prefixes, ["datacapture/"])
  _write_prefixes    = concat(local._pipeline_prefixes, ["datacapture/", "monitoring/"])
  # Written by pipeline-run (its caller) only: a job must not replace the code a later run or
  # an endpoint executes.
  _protected_prefixes = [for name in var.pipeline_names : "${name}/code/"]
}

# SageMaker assumes the role for this account's resources in this region only (the
# confused-deputy guard AWS documents for SageMaker).
data "aws_iam_policy_document" "assume_role" {
  statement {
    sid     = "SageMakerAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["${local._sagemaker}:*"]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = var.role_name
  description          = length(var.pipeline_names) == 1 ? "Runs the ${var.pipeline_names[0]} SageMaker pipeline and its jobs." : "Runs the ${join(", ", var.pipeline_names)} SageMaker pipelines and their jobs."
  assume_role_policy   = data.aws_iam_policy_document.assume_role.json
  max_session_duration = 3600
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

# Every statement names this project's resources. The SageMaker job ARNs use the
# "pipelines-" prefix that SageMaker Pipelines gives every job it starts. ARNs are
# spelled out from names so the whole document is known at plan time and appears
# in full in `invoke plan` reviews.
data "aws_iam_policy_document" "this" {
  statement {
    sid       = "ArtifactBucketLocation"
    actions   = ["s3:GetBucketLocation"]
    resources = [local._bucket]
  }

  statement {
    sid       = "ArtifactBucketListThesePrefixes"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions"]
    resources = [local._bucket]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for prefix in distinct(concat(local._read_prefixes, local._write_prefixes)) : "${prefix}*"]
    }
  }

  statement {
    sid       = "ArtifactObjectsRead"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for prefix in local._read_prefixes : "${local._bucket}/${prefix}*"]
  }

  statement {
    sid       = "ArtifactObjectsWrite"
    actions   = ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject"]
    resources = [for prefix in local._write_prefixes : "${local._bucket}/${prefix}*"]
  }

  statement {
    sid       = "CodeIsWrittenByTheCallerOnly"
    effect    = "Deny"
    actions   = ["s3:DeleteObject", "s3:PutObject"]
    resources = [for prefix in local._protected_prefixes : "${local._bucket}/${prefix}*"]
  }

  statement {
    sid = "PipelineJobs"
    actions = [
      "sagemaker:AddTags",
      "sagemaker:CreateProcessingJob",
      "sagemaker:CreateTrainingJob",
      "sagemaker:DescribeProcessingJob",
      "sagemaker:DescribeTrainingJob",
      "sagemaker:StopProcessingJob",
      "sagemaker:StopTrainingJob",
    ]
    resources = [
      "arn:${data.aws_partition.current.partition}:sagemaker:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:processing-job/pipelines-*",
      "arn:${data.aws_partition.current.partition}:sagemaker:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:training-job/pipelines-*",
    ]
  }

  statement {
    sid = "PipelineModels"
    actions = [
      "sagemaker:AddTags",
      "sagemaker:CreateModel",
      "sagemaker:DescribeModel",
    ]
    resources = [
      "arn:${data.aws_partition.current.partition}:sagemaker:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:model/pipelines-*",
    ]
  }

  statement {
    sid = "ModelRegistry"
    actions = [
      "sagemaker:AddTags",
      "sagemaker:CreateModelPackage",
      "sagemaker:DescribeModelPackage",
      "sagemaker:DescribeModelPackageGroup",
      "sagemaker:ListModelPackages",
      "sagemaker:UpdateModelPackage",
    ]
    resources = flatten([
      for group in var.model_package_group_names : [
        "${local._sagemaker}:model-package-group/${group}",
        "${local._sagemaker}:model-package/${group}/*",
      ]
    ])
  }

  statement {
    sid = "OwnPipeline"
    actions = [
      "sagemaker:DescribePipeline",
      "sagemaker:DescribePipelineExecution",
      "sagemaker:ListPipelineExecutionSteps",
      "sagemaker:SendPipelineExecutionStepFailure",
      "sagemaker:SendPipelineExecutionStepSuccess",
    ]
    resources = flatten([
      for name in var.pipeline_names : [
        "${local._sagemaker}:pipeline/${name}",
        "${local._sagemaker}:pipeline/${name}/execution/*",
      ]
    ])
  }

  statement {
    sid       = "PassOnlyThisRoleToSageMaker"
    actions   = ["iam:PassRole"]
    resources = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/${var.role_name}"]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }

  statement {
    sid = "JobLogs"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = [
      "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:/aws/sagemaker/*",
      "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:/aws/sagemaker/*:log-stream:*",
    ]
  }

  statement {
    sid = "PullSageMakerImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    # The framework images live in AWS-owned accounts that differ by region.
    resources = ["arn:${data.aws_partition.current.partition}:ecr:${data.aws_region.current.name}:*:repository/sagemaker-*"]
  }

  statement {
    sid     = "EcrLogin"
    actions = ["ecr:GetAuthorizationToken"]
    # GetAuthorizationToken has no resource-level permissions in IAM.
    resources = ["*"]
  }

  # SageMaker's job metrics (/aws/sagemaker/...) and Model Monitor's, whose namespaces have
  # no leading slash (var.metric_namespaces).
  statement {
    sid       = "JobMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = concat(["/aws/sagemaker/*"], sort(var.metric_namespaces))
    }
  }

  # Deployment guardrails: SageMaker checks that the execution role may describe the rollback
  # alarms an endpoint update names (deployment-guardrails-configuration). Metric alarms
  # allow resource-level scoping: this project's alarms only.
  statement {
    sid       = "DescribeRollbackAlarms"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = ["arn:${data.aws_partition.current.partition}:cloudwatch:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:alarm:${var.rollback_alarm_name_prefix}*"]
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "${var.role_name}-least-privilege"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

# Kept apart from the main policy: a new key's ARN is only known after apply, and
# it would otherwise hide the whole main document from plan reviews.
data "aws_iam_policy_document" "kms" {
  count = length(var.kms_key_arns) > 0 ? 1 : 0

  statement {
    sid       = "ArtifactKeyUse"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = var.kms_key_arns
  }
}

resource "aws_iam_role_policy" "kms" {
  count = length(var.kms_key_arns) > 0 ? 1 : 0

  name   = "${var.role_name}-artifact-key"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.kms[0].json
}

resource "aws_iam_role_policy_attachment" "sagemaker_full_access" {
  count = var.attach_sagemaker_full_access ? 1 : 0

  role       = aws_iam_role.this.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSageMakerFullAccess"
}
