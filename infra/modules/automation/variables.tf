variable "agent_queue" {
  description = "Local target only: an SQS queue added as one more target of every event rule, which the local automation agent (`invoke automation-up`) reads. The emulator cannot start SageMaker pipelines, builds or CodePipelines from a rule; the agent runs the same invoke tasks instead. null: no queue (AWS)."
  type = object({
    kms_master_key_id = optional(string)
  })
  default = null
}

variable "bucket_name" {
  description = "Name of the artifact bucket (matched by the new-data rule)."
  type        = string
  nullable    = false
}

variable "code_repository_arn" {
  description = "ARN of the CodeCommit repository whose main-branch pushes start the build; null: no push rule."
  type        = string
  default     = null
}

variable "commit_branch" {
  description = "Branch whose pushes the commit rule matches (the delivery CodePipeline's branch)."
  type        = string
  default     = "main"
  nullable    = false
}

variable "dataset_prefix" {
  description = "S3 key prefix under which a new object starts the pipeline. It is a sub-prefix of datasets/ because the project's own staging keys (datasets/<sha256>/..., aliases) also live under datasets/ and must not retrigger a run."
  type        = string
  default     = "datasets/incoming/"
  nullable    = false

  validation {
    condition     = can(regex("^datasets/([A-Za-z0-9_-]+/)+$", var.dataset_prefix))
    error_message = "dataset_prefix must be a folder under datasets/ ending with '/', of letters, digits, '_' and '-' (e.g. datasets/incoming/)."
  }
}

variable "drift_retraining" {
  description = "A CloudWatch alarm (drift, from the model monitoring module) entering ALARM starts the pipeline. Off by default; alarm_name_prefix selects the alarms."
  type = object({
    alarm_name_prefix = string
    enabled           = optional(bool, false)
  })
  default = null

  validation {
    condition     = var.drift_retraining == null ? true : can(regex("^[A-Za-z0-9._-]{1,200}$", var.drift_retraining.alarm_name_prefix))
    error_message = "drift_retraining.alarm_name_prefix must be 1-200 letters, digits, '.', '_' or '-'."
  }
}

variable "failure_notification" {
  description = "Failed pipeline executions go to this SNS topic (e.g. the model monitoring module's). null: no topic is created and no failure rule either. An object, so the rule's presence is known at plan time even when the ARN comes from another module. The topic's policy must allow events.amazonaws.com to publish."
  type = object({
    topic_arn = string
  })
  default = null

  validation {
    condition     = var.failure_notification == null ? true : can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", var.failure_notification.topic_arn))
    error_message = "failure_notification.topic_arn must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)."
  }
}

variable "model_package_group_name" {
  description = "Model package group whose approvals deploy to staging."
  type        = string
  nullable    = false
}

variable "name" {
  description = "Prefix of every resource name, e.g. mlops-dev."
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
  description = "SageMaker pipeline the rules start."
  type        = string
  nullable    = false
}

variable "retraining_schedule" {
  description = "Scheduled retraining: a rule with this rate()/cron() expression starts the pipeline with these parameters. null: no schedule."
  type = object({
    expression = optional(string, "rate(7 days)")
    parameters = optional(map(string), {})
  })
  default = {}

  validation {
    condition     = var.retraining_schedule == null ? true : can(regex("^(rate\\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\\)|cron\\(\\S+ \\S+ \\S+ \\S+ \\S+ \\S+\\))$", var.retraining_schedule.expression))
    error_message = "retraining_schedule.expression must be rate(1 minute), rate(N minutes) (hours, days likewise) or cron(minutes hours day-of-month month day-of-week year), as EventBridge writes them."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
  nullable    = false
}
