import CourierCLI

InboxdCommand.main()
