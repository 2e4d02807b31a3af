"""Ready GitHub Actions workflows for orqsync users, shipped as package data (orqsync.workflows)."""
