from orqsync.cli import main

main()
