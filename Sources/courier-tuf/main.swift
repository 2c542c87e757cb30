import TUFCLI

await TUFCommand.conformanceMain()
