"""The past: apply history, git revisions, blame, export and import."""
