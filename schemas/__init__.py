"""JSON Schemas of orqsync's files, shipped as package data (``orqsync.schemas``)."""
