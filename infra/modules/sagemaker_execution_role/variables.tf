variable "attach_sagemaker_full_access" {
  description = "Also attach the AWS managed AmazonSageMakerFullAccess policy. Off by default: it grants far more than the pipeline needs."
  type        = bool
  default     = false
  nullable    = false
}

variable "bucket_arn" {
  description = "ARN of the artifact bucket the pipeline reads from and writes to."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_arn))
    error_message = "bucket_arn must be an S3 bucket ARN (arn:aws:s3:::name), not an object ARN or a wildcard."
  }
}

variable "kms_key_arns" {
  description = "ARNs of the KMS keys that encrypt the artifact bucket; empty when it uses SSE-S3."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for arn in var.kms_key_arns : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", arn))])
    error_message = "kms_key_arns must hold KMS key ARNs (arn:aws:kms:region:account:key/id), not aliases or wildcards."
  }
}

variable "metric_namespaces" {
  description = "CloudWatch namespaces the monitoring jobs publish to besides SageMaker's own /aws/sagemaker/* (Model Monitor's data and model metrics)."
  type        = list(string)
  nullable    = false

  validation {
    condition     = alltrue([for n in var.metric_namespaces : can(regex("^aws/sagemaker/[A-Za-z0-9/_-]+$", n))])
    error_message = "metric_namespaces must be Model Monitor namespaces such as aws/sagemaker/Endpoints/data-metrics."
  }
}

variable "model_package_group_names" {
  description = "Names of the model package groups the pipelines register models in (one per pipeline)."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.model_package_group_names) > 0 && alltrue([for name in var.model_package_group_names : can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", name))])
    error_message = "model_package_group_names must name at least one group; each is 1-63 letters, digits and hyphens, starting with a letter or digit."
  }
}

variable "permissions_boundary_arn" {
  description = "ARN of a permissions boundary policy required by the organisation, if any."
  type        = string
  default     = null
}

variable "pipeline_names" {
  description = "Names of the SageMaker pipelines this role runs; each name is also the artifact bucket prefix of its code and outputs."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.pipeline_names) > 0 && alltrue([for name in var.pipeline_names : can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$", name))])
    error_message = "pipeline_names must name at least one pipeline; each is letters, digits and hyphens, starting with a letter or digit (SageMaker's pipeline name rule)."
  }
}

variable "rollback_alarm_name_prefix" {
  description = "Prefix of the CloudWatch alarms an endpoint update may name for automatic rollback; the role may describe those alarms only."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,200}$", var.rollback_alarm_name_prefix))
    error_message = "rollback_alarm_name_prefix must be 1-200 letters, digits, '.', '_' or '-'."
  }
}

variable "role_name" {
  description = "Name of the IAM role."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[\\w+=,.@-]{1,64}$", var.role_name))
    error_message = "role_name must be 1-64 characters of letters, digits and +=,.@_-."
  }
}

variable "tags" {
  description = "Tags for the role."
  type        = map(string)
  default     = {}
  nullable    = false
}
