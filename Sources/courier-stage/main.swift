import StageCLI

StageCommand.main()
