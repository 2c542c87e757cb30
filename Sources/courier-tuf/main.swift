import TUFCLI

TUFCommand.main()
