"""Plans, reports and problems for people: text, JSON, the pull-request comment, GitHub."""
