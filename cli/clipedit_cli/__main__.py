from clipedit_cli.app import main

main()
