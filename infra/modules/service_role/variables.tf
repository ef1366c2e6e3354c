variable "description" {
  description = "What the role may do, in one sentence (shown in the IAM console)."
  type        = string
  nullable    = false
}

variable "name" {
  description = "Name of the IAM role."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[\\w+=,.@-]{1,64}$", var.name))
    error_message = "name must be 1-64 characters of letters, digits and +=,.@_-."
  }
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary the organisation requires on IAM roles, if any."
  type        = string
  default     = null
}

variable "policy_json" {
  description = "The role's one inline policy document (JSON), e.g. from an aws_iam_policy_document."
  type        = string
  nullable    = false
}

variable "policy_name" {
  description = "Name of the inline policy."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[\\w+=,.@-]{1,128}$", var.policy_name))
    error_message = "policy_name must be 1-128 characters of letters, digits and +=,.@_-."
  }
}

variable "service" {
  description = "The AWS service principal that assumes the role, e.g. codebuild.amazonaws.com."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9.-]+\\.amazonaws\\.com$", var.service))
    error_message = "service must be an AWS service principal such as events.amazonaws.com."
  }
}

variable "tags" {
  description = "Tags for the role."
  type        = map(string)
  default     = {}
  nullable    = false
}
