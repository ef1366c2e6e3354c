data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  _arn_prefix  = "arn:${data.aws_partition.current.partition}"
  _account     = data.aws_caller_identity.current.account_id
  _region      = data.aws_region.current.name
  pipeline_arn = "${local._arn_prefix}:sagemaker:${local._region}:${local._account}:pipeline/${var.pipeline_name}"
  _agent       = var.agent_queue != null
  _drift       = var.drift_retraining != null ? var.drift_retraining.enabled : false
  _failure     = var.failure_notification != null
  _schedule    = var.retraining_schedule != null
  _commit_rule = var.code_repository_arn != null
  _rule_prefix = "${var.name}-"

  # EventBridge patterns: exactly the events AWS emits (see the module README for samples).
  event_patterns = {
    approval_deploy = {
      source        = ["aws.sagemaker"]
      "detail-type" = ["SageMaker Model Package State Change"]
      detail = {
        ModelPackageGroupName = [var.model_package_group_name]
        ModelApprovalStatus   = ["Approved"]
      }
    }
    commit_build = {
      source        = ["aws.codecommit"]
      "detail-type" = ["CodeCommit Repository State Change"]
      resources     = compact([var.code_repository_arn])
      detail = {
        event         = ["referenceCreated", "referenceUpdated"]
        referenceType = ["branch"]
        referenceName = [var.commit_branch]
      }
    }
    new_data_retraining = {
      source        = ["aws.s3"]
      "detail-type" = ["Object Created"]
      detail = {
        bucket = { name = [var.bucket_name] }
        object = { key = [{ prefix = var.dataset_prefix }] }
      }
    }
    execution_failed = {
      source        = ["aws.sagemaker"]
      "detail-type" = ["SageMaker Model Building Pipeline Execution Status Change"]
      detail = {
        pipelineArn                    = [local.pipeline_arn]
        currentPipelineExecutionStatus = ["Failed"]
      }
    }
    drift_retraining = {
      source        = ["aws.cloudwatch"]
      "detail-type" = ["CloudWatch Alarm State Change"]
      detail = {
        alarmName = [{ prefix = var.drift_retraining != null ? var.drift_retraining.alarm_name_prefix : "-" }]
        state     = { value = ["ALARM"] }
      }
    }
  }

  # Which rules exist, and which of them the local agent also receives.
  _pattern_rules = {
    approval_deploy     = true
    commit_build        = local._commit_rule
    new_data_retraining = true
    execution_failed    = local._failure
    drift_retraining    = local._drift
  }
  pattern_rules = { for key, on in local._pattern_rules : key => "${local._rule_prefix}${replace(key, "_", "-")}" if on }
  # The agent acts on everything but failures (those go to the SNS topic only).
  agent_rules = local._agent ? { for key, name in local.pattern_rules : key => name if key != "execution_failed" } : {}
  # Rules that start the SageMaker pipeline directly (no event data needed).
  pipeline_target_rules = merge(
    local._schedule ? { scheduled_retraining = aws_cloudwatch_event_rule.scheduled_retraining[0].name } : {},
    local._drift ? { drift_retraining = aws_cloudwatch_event_rule.pattern["drift_retraining"].name } : {},
  )
}

# --- event rules ------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "pattern" {
  for_each = local.pattern_rules

  name          = each.value
  description   = "mlops automation: ${replace(each.key, "_", " ")} (${var.pipeline_name})"
  event_pattern = jsonencode(local.event_patterns[each.key])
  state         = "ENABLED"
  tags          = var.tags
}

resource "aws_cloudwatch_event_rule" "scheduled_retraining" {
  count = local._schedule ? 1 : 0

  name                = "${local._rule_prefix}scheduled-retraining"
  description         = "mlops automation: scheduled retraining of ${var.pipeline_name}"
  schedule_expression = var.retraining_schedule.expression
  state               = "ENABLED"
  tags                = var.tags
}

# --- targets: SageMaker pipeline ---------------------------------------------------------

resource "aws_cloudwatch_event_target" "start_pipeline" {
  for_each = local.pipeline_target_rules

  rule      = each.value
  target_id = "start-pipeline"
  arn       = local.pipeline_arn
  role_arn  = module.events_role[0].role_arn

  sagemaker_pipeline_target {
    dynamic "pipeline_parameter_list" {
      for_each = each.key == "scheduled_retraining" ? var.retraining_schedule.parameters : {}

      content {
        name  = pipeline_parameter_list.key
        value = pipeline_parameter_list.value
      }
    }
  }

  depends_on = [aws_cloudwatch_event_rule.pattern, aws_cloudwatch_event_rule.scheduled_retraining]
}

# The same role pattern as the delivery module's roles (modules/service_role).
module "events_role" {
  source = "../service_role"
  count  = length(local.pipeline_target_rules) > 0 ? 1 : 0

  name                     = "${var.name}-events-start-pipeline"
  description              = "EventBridge starts the ${var.pipeline_name} pipeline, nothing else."
  service                  = "events.amazonaws.com"
  policy_name              = "start-pipeline"
  policy_json              = data.aws_iam_policy_document.events_start_pipeline.json
  permissions_boundary_arn = var.permissions_boundary_arn
  tags                     = var.tags
}

moved {
  from = aws_iam_role.events_start_pipeline[0]
  to   = module.events_role[0].aws_iam_role.this
}

moved {
  from = aws_iam_role_policy.events_start_pipeline[0]
  to   = module.events_role[0].aws_iam_role_policy.this
}

data "aws_iam_policy_document" "events_start_pipeline" {
  statement {
    sid       = "StartThisPipeline"
    actions   = ["sagemaker:StartPipelineExecution"]
    resources = [local.pipeline_arn]
  }
}

# --- targets: SNS (failed executions) ----------------------------------------------------

resource "aws_cloudwatch_event_target" "failure_topic" {
  count = local._failure ? 1 : 0

  rule      = aws_cloudwatch_event_rule.pattern["execution_failed"].name
  target_id = "failure-topic"
  arn       = var.failure_notification.topic_arn
}

# --- new data: the artifact bucket sends its events to EventBridge -------------------------
# (the artifact_bucket module's enable_eventbridge_notifications, switched on with this module)

# --- the local agent's queue -------------------------------------------------------------

resource "aws_sqs_queue" "agent" {
  count = local._agent ? 1 : 0

  name                              = "${var.name}-automation-agent"
  message_retention_seconds         = 1209600
  visibility_timeout_seconds        = 900
  receive_wait_time_seconds         = 1
  sqs_managed_sse_enabled           = var.agent_queue.kms_master_key_id == null ? true : null
  kms_master_key_id                 = var.agent_queue.kms_master_key_id
  kms_data_key_reuse_period_seconds = var.agent_queue.kms_master_key_id == null ? null : 300
  tags                              = var.tags
}

data "aws_iam_policy_document" "agent_queue" {
  count = local._agent ? 1 : 0

  statement {
    sid       = "TheseRulesSend"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.agent[0].arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for key in sort(keys(local.agent_rules)) : aws_cloudwatch_event_rule.pattern[key].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "agent" {
  count = local._agent ? 1 : 0

  queue_url = aws_sqs_queue.agent[0].id
  policy    = data.aws_iam_policy_document.agent_queue[0].json
}

# Each rule delivers {"rule": <its name>, "event": <the event as AWS emitted it>}, so the
# agent knows which rule fired without matching the event again.
resource "aws_cloudwatch_event_target" "agent" {
  for_each = local.agent_rules

  rule      = aws_cloudwatch_event_rule.pattern[each.key].name
  target_id = "local-automation-agent"
  arn       = aws_sqs_queue.agent[0].arn

  input_transformer {
    input_template = "{\"rule\": \"${each.value}\", \"event\": <aws.events.event.json>}"
  }
}
