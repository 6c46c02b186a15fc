"""The Textual results browser: `run(path)` opens it on a results file."""

from qcapprox.tui.app import QcapproxApp, run

__all__ = ["QcapproxApp", "run"]
