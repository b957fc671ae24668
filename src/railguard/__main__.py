from railguard.cli import main

main()
