"""Model monitoring of the deployed endpoint: drift on captured traffic, model quality when
labels arrive, reports, schedules and alerts (local target and SageMaker Model Monitor)."""
