resource "aws_codecommit_repository" "this" {
  #checkov:skip=CKV2_AWS_37:Approval rule templates are an organisation-wide policy attached outside this project; the emulator does not implement them either.
  count = var.create_repository ? 1 : 0

  repository_name = var.repository_name
  description     = var.description
  kms_key_id      = var.kms_key_arn
  tags            = var.tags
}
