variable "create_repository" {
  description = "Create the CodeCommit repository. Turn off where code lives in another Git host."
  type        = bool
  default     = true
  nullable    = false
}

variable "description" {
  description = "Description shown in the CodeCommit console."
  type        = string
  default     = "SageMaker pipeline, training code and infrastructure."
  nullable    = false

  validation {
    condition     = length(var.description) <= 1000
    error_message = "description must be at most 1000 characters."
  }
}

variable "kms_key_arn" {
  description = "ARN of a customer-managed KMS key for the repository; null uses the AWS-managed CodeCommit key."
  type        = string
  default     = null
}

variable "repository_name" {
  description = "Name of the CodeCommit repository."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[\\w.-]{1,100}$", var.repository_name)) && !endswith(var.repository_name, ".git")
    error_message = "repository_name must be 1-100 letters, digits, '.', '_' or '-', and must not end in .git."
  }
}

variable "tags" {
  description = "Tags for the repository."
  type        = map(string)
  default     = {}
  nullable    = false
}
