output "agent_queue_url" {
  description = "URL of the local automation agent's SQS queue; null without agent_queue."
  value       = try(aws_sqs_queue.agent[0].id, null)
}

output "event_patterns" {
  description = "The event pattern of every rule this module created, by rule name."
  value       = { for key, rule in aws_cloudwatch_event_rule.pattern : rule.name => local.event_patterns[key] }
}

output "rule_names" {
  description = "Every EventBridge rule this module created, by purpose (approval_deploy, scheduled_retraining, ...)."
  value = merge(
    { for key, rule in aws_cloudwatch_event_rule.pattern : key => rule.name },
    { for rule in aws_cloudwatch_event_rule.scheduled_retraining : "scheduled_retraining" => rule.name },
  )
}
