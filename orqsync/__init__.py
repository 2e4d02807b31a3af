"""orqsync: GitOps for human annotations on orq.ai traces."""

__version__ = "0.1.0"
