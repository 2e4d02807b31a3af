"""What the repository declares (orqsync.yaml, definitions, annotation files), read and
checked offline."""
