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
