from oci_normalize.cli.app import main

main()
