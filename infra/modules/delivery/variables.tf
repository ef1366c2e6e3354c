variable "access_log_bucket" {
  description = "Existing bucket that receives S3 server access logs of the delivery bucket; null leaves them off."
  type        = string
  default     = null
}

variable "bucket_arn" {
  description = "ARN of the artifact bucket the builds read and write (by prefix: see the README)."
  type        = string
  nullable    = false
}

variable "bucket_name" {
  description = "Name of the artifact bucket; DATA_URI must name an object in it."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 lower-case letters, digits and hyphens (it becomes part of a pattern the run build checks DATA_URI against)."
  }
}

variable "build_pipeline" {
  description = "The builds and their source: exactly one of codecommit_repository, or connection_arn with connection_repository (owner/name of a GitHub repository reached through a CodeStar/CodeConnections connection). The stages are the deploy task's --stage values."
  type = object({
    branch                = optional(string, "main")
    codecommit_repository = optional(string)
    connection_arn        = optional(string)
    connection_repository = optional(string)
    compute_type          = optional(string, "BUILD_GENERAL1_SMALL")
    image                 = optional(string, "aws/codebuild/amazonlinux2-x86_64-standard:5.0")
    production_stage      = optional(string, "prod")
    staging_stage         = optional(string, "staging")
    state_bucket_arn      = optional(string)
  })
  nullable = false

  validation {
    condition     = (var.build_pipeline.codecommit_repository != null) != (var.build_pipeline.connection_arn != null)
    error_message = "build_pipeline needs exactly one source: codecommit_repository, or connection_arn (with connection_repository, owner/name)."
  }

  validation {
    condition = var.build_pipeline.connection_arn == null || (
      can(regex("^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:[0-9]{12}:connection/[0-9a-f-]+$", var.build_pipeline.connection_arn))
      && can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", coalesce(var.build_pipeline.connection_repository, "-")))
    )
    error_message = "build_pipeline.connection_arn must be a CodeStar/CodeConnections connection ARN (arn:aws:codeconnections:REGION:ACCOUNT:connection/ID), and connection_repository owner/name."
  }

  validation {
    condition = alltrue([
      for stage in [var.build_pipeline.staging_stage, var.build_pipeline.production_stage] : can(regex("^[a-z][a-z0-9]{1,9}$", stage))
    ]) && var.build_pipeline.staging_stage != var.build_pipeline.production_stage
    error_message = "build_pipeline.staging_stage and production_stage must differ and be 2-10 lower-case letters or digits, starting with a letter (the deploy build accepts exactly these two)."
  }

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]{1,255}$", var.build_pipeline.branch))
    error_message = "build_pipeline.branch must be a branch name of letters, digits, '.', '_', '-' and '/'."
  }
}

variable "dataset_prefix" {
  description = "Key prefix under which new objects start a run; DATA_URI must name an object under it."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^datasets/([A-Za-z0-9_-]+/)+$", var.dataset_prefix))
    error_message = "dataset_prefix must be a folder under datasets/ ending with '/', of letters, digits, '_' and '-' (e.g. datasets/incoming/)."
  }
}

variable "delivery_bucket_name" {
  description = "Globally unique name of the bucket this module creates for CodePipeline's artifacts."
  type        = string
  nullable    = false
}

variable "enable_kms_encryption" {
  description = "Encrypt the delivery bucket with its own rotated KMS key (the artifact_bucket module's); false uses SSE-S3."
  type        = bool
  default     = true
  nullable    = false
}

variable "environment" {
  description = "Environment of this stack: the builds run `invoke ... --target aws --env` with it."
  type        = string
  nullable    = false
}

variable "execution_role_arn" {
  description = "ARN of the SageMaker execution role; the builds may pass it to SageMaker only."
  type        = string
  nullable    = false
}

variable "kms_key_arns" {
  description = "KMS keys of the artifact bucket, which the builds use."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "model_package_group_name" {
  description = "Model package group the deploy build reads."
  type        = string
  nullable    = false
}

variable "name" {
  description = "Prefix of every resource name, e.g. mlops-dev (the root's local.name)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary for the roles this module creates, if the organisation requires one."
  type        = string
  default     = null
}

variable "pipeline_name" {
  description = "SageMaker pipeline the builds upsert and start."
  type        = string
  nullable    = false
}

variable "rule_names" {
  description = "The automation module's rules that start builds (its rule_names output): approval_deploy, new_data_retraining and, for a CodeCommit source, commit_build."
  type = object({
    approval_deploy     = string
    commit_build        = optional(string)
    new_data_retraining = string
  })
  nullable = false
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
  nullable    = false
}
