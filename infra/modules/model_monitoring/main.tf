data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  _account = data.aws_caller_identity.current.account_id
  _topic   = "${var.name}-alerts"
  # Spelled out from the name, so the topic policy is known at plan time (plan.md shows it).
  _topic_arn = "arn:${data.aws_partition.current.partition}:sns:${data.aws_region.current.name}:${local._account}:${local._topic}"
  # One alarm per endpoint and feature. The first endpoint's are keyed by feature alone, the
  # addresses they had when the module watched one endpoint; the others' by <key>/<feature>
  # (a feature name holds no "/", so the two never collide).
  _alarms = merge([
    for index, endpoint in var.monitored_endpoints : {
      for feature in distinct(endpoint.features) : (index == 0 ? feature : "${endpoint.key}/${feature}") => {
        endpoint_name = endpoint.endpoint_name
        schedule_name = endpoint.schedule_name
        feature       = feature
      }
    }
  ]...)
}

# The topic's own key: CloudWatch must be allowed to use it to publish alarm notifications,
# which the artifact bucket's key never allows.
resource "aws_kms_key" "this" {
  description             = "Encrypts the SNS topic ${local._topic} (model monitoring alerts)"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_in_days
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${local._topic}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:In a key policy "*" is this key only; the account-root statement is AWS's default, which hands control to IAM policies.
  #checkov:skip=CKV_AWS_356:In a key policy "*" is this key only, not every resource.
  #checkov:skip=CKV_AWS_109:The account root administers its own key; IAM policies decide who else may use it.
  statement {
    sid       = "AccountAdministersKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${local._account}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishEncrypted"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local._account]
    }
  }
}

resource "aws_sns_topic" "this" {
  name              = local._topic
  kms_master_key_id = aws_kms_key.this.arn
  tags              = var.tags
}

# Only this account's CloudWatch alarms publish. The account's own principals need no
# statement here: their IAM policies decide (a grant to the account root without a
# condition is what CKV_AWS_385 flags as cross-account access).
data "aws_iam_policy_document" "topic" {
  statement {
    sid       = "CloudWatchAlarmsOfThisAccountPublish"
    actions   = ["sns:Publish"]
    resources = [local._topic_arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local._account]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:cloudwatch:*:${local._account}:alarm:${var.name}-*"]
    }
  }
}

resource "aws_sns_topic_policy" "this" {
  arn    = aws_sns_topic.this.arn
  policy = data.aws_iam_policy_document.topic.json
}

resource "aws_sns_topic_subscription" "this" {
  for_each = { for s in var.alarm_subscriptions : "${s.protocol}:${s.endpoint}" => s }

  topic_arn = aws_sns_topic.this.arn
  protocol  = each.value.protocol
  endpoint  = each.value.endpoint
}

# One alarm per feature on Model Monitor's drift metric: the robust L-infinity distance the
# data-quality job emits each hour. An alarm's dimensions must be the metric's, all of them:
# the built-in container publishes per-feature metrics with Endpoint, Feature and
# MonitoringSchedule (the SageMaker SDK's data-quality dashboard queries exactly those).
# Missing data (no traffic that hour) is not a breach.
resource "aws_cloudwatch_metric_alarm" "drift" {
  for_each = local._alarms

  alarm_name          = "${each.value.endpoint_name}-drift-${each.value.feature}"
  alarm_description   = "Model Monitor: drift of feature ${each.value.feature} on ${each.value.endpoint_name} above ${var.drift_threshold}"
  namespace           = var.metric_namespace
  metric_name         = "feature_baseline_drift_${each.value.feature}"
  dimensions          = { Endpoint = each.value.endpoint_name, Feature = each.value.feature, MonitoringSchedule = each.value.schedule_name }
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.drift_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  tags                = var.tags
}
