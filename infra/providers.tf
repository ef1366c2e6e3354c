provider "aws" {
  region = var.region

  # Set only for the local emulator (var.aws_endpoint_url). Everything else,
  # security settings included, is the same on the emulator and on AWS.
  max_retries                 = var.aws_endpoint_url == null ? null : 2
  s3_use_path_style           = var.aws_endpoint_url != null
  skip_credentials_validation = var.aws_endpoint_url != null
  skip_metadata_api_check     = var.aws_endpoint_url != null

  dynamic "endpoints" {
    for_each = var.aws_endpoint_url == null ? [] : [var.aws_endpoint_url]

    content {
      cloudwatch   = endpoints.value
      codebuild    = endpoints.value
      codecommit   = endpoints.value
      codepipeline = endpoints.value
      events       = endpoints.value
      iam          = endpoints.value
      kms          = endpoints.value
      s3           = endpoints.value
      sagemaker    = endpoints.value
      sns          = endpoints.value
      sqs          = endpoints.value
      sts          = endpoints.value
    }
  }

  default_tags {
    tags = merge(var.tags, {
      Project     = var.name_prefix
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
