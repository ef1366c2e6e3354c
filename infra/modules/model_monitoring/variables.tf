variable "alarm_subscriptions" {
  description = "Who receives the alarms: SNS subscriptions of the topic (e.g. { protocol = \"email\", endpoint = \"team@example.com\" })."
  type = list(object({
    protocol = string
    endpoint = string
  }))
  default  = []
  nullable = false

  validation {
    condition     = alltrue([for s in var.alarm_subscriptions : contains(["email", "email-json", "https", "sqs", "lambda", "sms"], s.protocol)])
    error_message = "alarm_subscriptions protocols must be one of email, email-json, https, sqs, lambda, sms (plain http would send violations unencrypted)."
  }
}

variable "drift_threshold" {
  description = "Alarm when a feature's drift distance is above this (Model Monitor's default comparison threshold is 0.1)."
  type        = number
  default     = 0.1
  nullable    = false

  validation {
    condition     = var.drift_threshold > 0 && var.drift_threshold <= 1
    error_message = "drift_threshold is an L-infinity distance between distributions: above 0 and at most 1."
  }
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period before a scheduled deletion of the topic's KMS key takes effect."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30
    error_message = "kms_deletion_window_in_days must be between 7 and 30 (KMS's limits)."
  }
}

variable "metric_namespace" {
  description = "CloudWatch namespace of Model Monitor's data-quality metrics for endpoints (aws/sagemaker/Endpoints/data-metrics)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^aws/sagemaker/Endpoints/[a-z-]+$", var.metric_namespace))
    error_message = "metric_namespace must be a Model Monitor endpoint namespace such as aws/sagemaker/Endpoints/data-metrics."
  }
}

variable "monitored_endpoints" {
  description = "The endpoints whose features get a drift alarm each, one per pipeline (key), in order: the endpoint and its data-quality monitoring schedule (the metrics' Endpoint and MonitoringSchedule dimensions) and the features (the model's, as in its data-quality baseline; empty: no alarms). The first endpoint's alarms are keyed by feature, the others' by <key>/<feature>."
  type = list(object({
    key           = string
    endpoint_name = string
    schedule_name = string
    features      = list(string)
  }))
  nullable = false

  validation {
    condition     = length(var.monitored_endpoints) > 0 && length(distinct([for e in var.monitored_endpoints : e.key])) == length(var.monitored_endpoints)
    error_message = "monitored_endpoints must list at least one endpoint, each under a key of its own."
  }

  validation {
    condition     = alltrue([for e in var.monitored_endpoints : can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", e.endpoint_name)) && can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", e.schedule_name))])
    error_message = "monitored_endpoints: endpoint_name and schedule_name must be 1-63 letters, digits and hyphens (SageMaker's name rules)."
  }

  validation {
    condition     = alltrue([for e in var.monitored_endpoints : alltrue([for f in e.features : can(regex("^[A-Za-z0-9_.-]{1,200}$", f))])])
    error_message = "monitored_endpoints: feature names are letters, digits, _, . and - (they become metric names)."
  }
}

variable "name" {
  description = "Prefix of the topic and key alias names (e.g. mlops-dev); alarm names start with the endpoint name."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be 2-41 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags for every resource of this module."
  type        = map(string)
  default     = {}
  nullable    = false
}
