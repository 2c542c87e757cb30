import StageCLI

await StageCommand.main()
