# AWS environments keep their state in S3; bucket, key and region come from a
# partial configuration, envs/<env>.s3.tfbackend, passed by `invoke infra-up`.
# The local target replaces this block with a local backend under .mlops/ through
# a generated, git-ignored backend_override.tf (see pipelines/terraform.py).
terraform {
  backend "s3" {}
}
