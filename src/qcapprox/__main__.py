"""`python -m qcapprox ...`: the `qcapprox` command line."""

from qcapprox.cli import main

if __name__ == "__main__":
    main()
