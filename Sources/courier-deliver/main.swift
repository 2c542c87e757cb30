import DeliverCLI

DeliverCommand.main()
