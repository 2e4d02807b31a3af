"""One module per command, each with the work function cli.py calls: it takes the
project's Settings and plain values, returns what cli.py renders, and raises OrqsyncError for
what the user can act on. Nothing here talks to the terminal."""
