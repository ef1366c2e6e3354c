# The local target: applied to the emulator started by `invoke infra-up`.
# Same settings as AWS; only the endpoint and the credentials differ, and the
# tasks pass those (aws_endpoint_url, fake keys), not this file.
environment = "local"
region      = "us-east-1"
