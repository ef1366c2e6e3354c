resource "aws_sagemaker_model_package_group" "this" {
  model_package_group_name        = var.model_package_group_name
  model_package_group_description = var.description
  tags                            = var.tags
}

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

locals {
  _group_arn = "arn:${data.aws_partition.current.partition}:sagemaker:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:model-package-group/${var.model_package_group_name}"
  # Versions are model packages named after their group: <group>/<version>.
  _package_arns = "arn:${data.aws_partition.current.partition}:sagemaker:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:model-package/${var.model_package_group_name}/*"
}

# Cross-account sharing (AWS's multi-account MLOps template): the deploying accounts
# may read the group and its versions, to create models from them; nothing else.
data "aws_iam_policy_document" "sharing" {
  count = length(var.deploying_account_ids) > 0 ? 1 : 0

  statement {
    sid       = "DeployingAccountsReadTheGroup"
    actions   = ["sagemaker:DescribeModelPackageGroup"]
    resources = [local._group_arn]

    principals {
      type        = "AWS"
      identifiers = [for id in var.deploying_account_ids : "arn:${data.aws_partition.current.partition}:iam::${id}:root"]
    }
  }

  statement {
    sid       = "DeployingAccountsReadTheVersions"
    actions   = ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"]
    resources = [local._package_arns]

    principals {
      type        = "AWS"
      identifiers = [for id in var.deploying_account_ids : "arn:${data.aws_partition.current.partition}:iam::${id}:root"]
    }
  }
}

resource "aws_sagemaker_model_package_group_policy" "this" {
  count = length(var.deploying_account_ids) > 0 ? 1 : 0

  model_package_group_name = aws_sagemaker_model_package_group.this.model_package_group_name
  resource_policy          = data.aws_iam_policy_document.sharing[0].json
}
