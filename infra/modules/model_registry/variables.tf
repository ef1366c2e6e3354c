variable "deploying_account_ids" {
  description = "AWS account ids (12 digits) of the stages that deploy this group's versions (staging, prod); each may read the group and its versions. Empty: no group policy."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for id in var.deploying_account_ids : can(regex("^[0-9]{12}$", id))])
    error_message = "deploying_account_ids must be 12-digit AWS account ids."
  }

  validation {
    condition     = length(distinct(var.deploying_account_ids)) == length(var.deploying_account_ids)
    error_message = "deploying_account_ids must not repeat an account id."
  }
}

variable "description" {
  description = "Description of the model package group."
  type        = string
  default     = "Model versions registered by the SageMaker pipeline."
  nullable    = false

  validation {
    condition     = length(var.description) <= 1024
    error_message = "description must be at most 1024 characters."
  }
}

variable "model_package_group_name" {
  description = "Name of the model package group."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", var.model_package_group_name))
    error_message = "model_package_group_name must be 1-63 letters, digits and hyphens, starting with a letter or digit."
  }
}

variable "tags" {
  description = "Tags for the model package group."
  type        = map(string)
  default     = {}
  nullable    = false
}
