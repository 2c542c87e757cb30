import CourierCLI

DeliverCommand.main()
