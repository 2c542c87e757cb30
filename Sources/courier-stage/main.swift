import CourierCLI

StageCommand.main()
