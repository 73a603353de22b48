from luyen.cli import main

main()
