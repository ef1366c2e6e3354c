"""Serving models: the local endpoint (front, model servers and their workers, data
capture) and the SageMaker deployer."""
