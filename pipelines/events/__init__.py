"""The events the project emits, in AWS's exact JSON, and how they reach EventBridge."""
