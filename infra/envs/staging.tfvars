environment                        = "staging"
region                             = "eu-west-1"
noncurrent_version_expiration_days = 90
