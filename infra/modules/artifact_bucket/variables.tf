variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which an unfinished multipart upload is aborted and its parts deleted."
  type        = number
  default     = 7
  nullable    = false

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1 && floor(var.abort_incomplete_multipart_upload_days) == var.abort_incomplete_multipart_upload_days
    error_message = "abort_incomplete_multipart_upload_days must be a whole number of days, at least 1."
  }
}

variable "access_log_bucket" {
  description = "Name of an existing bucket that receives S3 server access logs; null leaves access logging off."
  type        = string
  default     = null
}

variable "bucket_name" {
  description = "Globally unique name of the artifact bucket."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name)) && !strcontains(var.bucket_name, "--")
    error_message = "bucket_name must be 3-63 characters of lower-case letters, digits and single hyphens, starting and ending with a letter or digit."
  }
}

variable "enable_eventbridge_notifications" {
  description = "Send the bucket's object events (Object Created, ...) to EventBridge, where rules can act on them (the automation module's new-data rule)."
  type        = bool
  default     = false
  nullable    = false
}

variable "deploying_account_ids" {
  description = "AWS account ids (12 digits) of the stages that deploy from this environment's registry; each may read objects and decrypt them through S3. Empty: no cross-account statement."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for id in var.deploying_account_ids : can(regex("^[0-9]{12}$", id))])
    error_message = "deploying_account_ids must be 12-digit AWS account ids."
  }
}

variable "deploying_account_read_prefixes" {
  description = "Key prefixes (ending with '/') whose objects the deploying accounts may read: the model artifacts and the inference code, nothing else."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for p in var.deploying_account_read_prefixes : can(regex("^[A-Za-z0-9][A-Za-z0-9._/-]*/$", p))])
    error_message = "deploying_account_read_prefixes must be key prefixes such as mlops-dev-pipeline/models/ (no leading '/', ending with '/', no wildcards)."
  }
}

variable "enable_kms_encryption" {
  description = "Encrypt objects with a customer-managed KMS key (rotated yearly) created by this module; false uses SSE-S3 (AES256)."
  type        = bool
  default     = true
  nullable    = false
}

variable "force_destroy" {
  description = "Let Terraform delete the bucket while it still holds objects and versions. Keep false where artifacts matter."
  type        = bool
  default     = false
  nullable    = false
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period before a scheduled deletion of the KMS key takes effect."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30
    error_message = "kms_deletion_window_in_days must be between 7 and 30, the range KMS accepts."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced or deleted object version is kept before it expires."
  type        = number
  default     = 90
  nullable    = false

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number of days, at least 1."
  }
}

variable "tags" {
  description = "Tags for every resource of this module."
  type        = map(string)
  default     = {}
  nullable    = false
}
