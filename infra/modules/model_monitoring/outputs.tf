output "alarm_names" {
  description = "Names of the drift alarms, by feature (the first endpoint's) or <key>/<feature> (the others')."
  value       = { for feature, alarm in aws_cloudwatch_metric_alarm.drift : feature => alarm.alarm_name }
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the topic."
  value       = aws_kms_key.this.arn
}

output "topic_arn" {
  description = "ARN of the SNS topic the alarms notify."
  value       = aws_sns_topic.this.arn
}
