"""SageMaker MLOps: infrastructure tasks, the pipeline definition and its executors."""

__version__ = "0.1.0"
