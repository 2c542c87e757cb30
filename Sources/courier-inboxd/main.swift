import InboxCLI

InboxdCommand.main()
