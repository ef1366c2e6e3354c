# The local target: applied to the emulator started by `invoke infra-up`.
# Same settings as AWS; only the endpoint and the credentials differ, and the
# tasks pass those (aws_endpoint_url, fake keys), not this file.
environment = "local"
region      = "us-east-1"

# The same EventBridge rules as AWS, plus the SQS queue the local agent reads
# (`invoke automation-up`); no CodeBuild/CodePipeline: the emulator cannot run builds.
automation = {
  local_agent = true
}
