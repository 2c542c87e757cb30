import TUFCLI

await TUFCommand.main()
