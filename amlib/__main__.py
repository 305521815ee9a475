from amlib.cli import main

main()
