environment = "dev"
region      = "eu-west-1"
# The staging and prod accounts that deploy dev's model versions (`invoke deploy
# --stage staging --target aws`, `invoke promote`): they get read access to the model
# package group, the bucket's objects and its KMS key. Empty: nothing is shared.
deploying_account_ids = []
