variable "access_log_bucket" {
  description = "Existing bucket that receives S3 server access logs of the artifact bucket; null leaves them off."
  type        = string
  default     = null
}

variable "attach_sagemaker_full_access" {
  description = "Attach AmazonSageMakerFullAccess to the execution role in addition to its least-privilege policy. Opt-in only."
  type        = bool
  default     = false
  nullable    = false
}

variable "automation" {
  description = "Settings of the automation module (EventBridge rules, builds): see infra/modules/automation/README.md. local_agent adds the SQS queue the local agent reads (the local target)."
  type = object({
    build_pipeline = optional(object({
      branch                = optional(string, "main")
      codecommit_repository = optional(string)
      connection_arn        = optional(string)
      connection_repository = optional(string)
      compute_type          = optional(string, "BUILD_GENERAL1_SMALL")
      image                 = optional(string, "aws/codebuild/amazonlinux2-x86_64-standard:5.0")
      production_stage      = optional(string, "prod")
      staging_stage         = optional(string, "staging")
      state_bucket_arn      = optional(string)
    }))
    dataset_prefix = optional(string, "datasets/incoming/")
    drift_retraining = optional(object({
      alarm_name_prefix = string
      enabled           = optional(bool, false)
    }))
    failure_notification = optional(object({
      topic_arn = string
    }))
    local_agent = optional(bool, false)
    retraining_schedule = optional(object({
      expression = optional(string, "rate(7 days)")
      parameters = optional(map(string), {})
    }), {})
  })
  default  = {}
  nullable = false
}

variable "aws_endpoint_url" {
  description = "HTTPS endpoint of the local AWS emulator. Set by `invoke infra-up` for the local target only; null means real AWS."
  type        = string
  default     = null

  validation {
    condition     = var.aws_endpoint_url == null || can(regex("^https://(127\\.0\\.0\\.1|localhost):[0-9]{2,5}$", var.aws_endpoint_url))
    error_message = "aws_endpoint_url must be https://127.0.0.1:<port>: the emulator serves TLS on loopback only."
  }
}

variable "bucket_force_destroy" {
  description = "Let Terraform delete the artifact bucket with objects in it. `invoke destroy` empties the bucket itself, so this can stay false."
  type        = bool
  default     = false
  nullable    = false
}

variable "create_code_repository" {
  description = "Create a CodeCommit repository for the project."
  type        = bool
  default     = true
  nullable    = false
}

variable "enable_automation" {
  description = "Create the automation module: EventBridge rules (approval -> deploy, schedule/new data/drift -> run, push -> build, failure -> SNS) and, with automation.build_pipeline, CodeBuild and CodePipeline."
  type        = bool
  default     = true
  nullable    = false
}

variable "deploying_account_ids" {
  description = "AWS account ids (12 digits) of the staging and prod environments that deploy this environment's model versions. They get read access to the model package group, the artifact bucket's objects and its KMS key, and nothing else. Empty (the default): no cross-account policy."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for id in var.deploying_account_ids : can(regex("^[0-9]{12}$", id))])
    error_message = "deploying_account_ids must be 12-digit AWS account ids, e.g. [\"111122223333\"]."
  }

  validation {
    condition     = length(distinct(var.deploying_account_ids)) == length(var.deploying_account_ids)
    error_message = "deploying_account_ids must not repeat an account id."
  }
}

variable "enable_kms_encryption" {
  description = "Encrypt the artifact bucket with a customer-managed, rotated KMS key; false uses SSE-S3."
  type        = bool
  default     = true
  nullable    = false
}

variable "environment" {
  description = "Environment name, part of every resource name: local, dev, prod, ..."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lower-case letters or digits, starting with a letter (e.g. dev, prod)."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name; identifies the project."
  type        = string
  default     = "mlops"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,14}[a-z0-9]$", var.name_prefix)) && !strcontains(var.name_prefix, "--")
    error_message = "name_prefix must be 2-16 lower-case letters, digits and single hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced artifact version is kept before it expires."
  type        = number
  default     = 90
  nullable    = false
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary the organisation requires on IAM roles, if any."
  type        = string
  default     = null
}

variable "pipelines" {
  description = "The repository's pipelines, in invoke.yaml's order (mlops.pipelines; the tasks pass them). Each gets its own SageMaker pipeline name (also its job and artifact prefix), model package group, endpoints and monitoring schedules: the first keeps the environment's own names (<name>-pipeline, <name>-models, <name>-endpoint, ...), so a stack applied before there were several pipelines keeps its resources; the others get <name>-<key>-pipeline, <name>-<key>-models, <name>-<key>-endpoint, .... monitored_features: columns with a drift alarm each on the pipeline's endpoint (the first pipeline's default: monitored_features). The automation rules and delivery builds act on the first pipeline only."
  type = list(object({
    key                = string
    monitored_features = optional(list(string))
  }))
  default  = [{ key = "main" }]
  nullable = false

  validation {
    condition     = length(var.pipelines) > 0
    error_message = "pipelines must list at least one pipeline, e.g. [{ key = \"main\" }]."
  }

  validation {
    condition     = alltrue([for p in var.pipelines : can(regex("^[a-z][a-z0-9-]{0,14}[a-z0-9]$", p.key)) && !strcontains(p.key, "--")])
    error_message = "pipelines: each key must be 2-16 lower-case letters, digits and single hyphens, starting with a letter and not ending with a hyphen (it is part of resource names)."
  }

  validation {
    condition     = length(distinct([for p in var.pipelines : p.key])) == length(var.pipelines)
    error_message = "pipelines must not repeat a key: each pipeline's resources are named after it."
  }

  validation {
    condition     = alltrue([for p in var.pipelines : alltrue([for f in coalesce(p.monitored_features, []) : can(regex("^[A-Za-z0-9_.-]{1,200}$", f))])])
    error_message = "pipelines: monitored_features are column names of letters, digits, _, . and - (they become metric names)."
  }
}

variable "region" {
  description = "AWS region of every resource."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region code such as us-east-1 or eu-central-1."
  }
}

variable "tags" {
  description = "Extra tags for every resource; Project, Environment and ManagedBy are always set."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "alarm_subscriptions" {
  description = "Who receives model-monitoring alarms: SNS subscriptions ({ protocol = \"email\", endpoint = \"team@example.com\" })."
  type = list(object({
    protocol = string
    endpoint = string
  }))
  default  = []
  nullable = false
}

variable "drift_threshold" {
  description = "Drift distance above which a feature's model-monitoring alarm fires."
  type        = number
  default     = 0.1
  nullable    = false
}

variable "monitored_features" {
  description = "Columns with a drift alarm each: the prediction (Model Monitor checks it under the target's name, first in the baseline) and the features; the sample data's by default."
  type        = list(string)
  default     = ["medv", "crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio", "b", "lstat"]
  nullable    = false
}
