"""What orqsync applied: the state file, its snapshot, the journal, the lock, provenance."""
