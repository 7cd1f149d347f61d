"""Run the command line as ``python -m outreach``."""

from outreach.cli import main

main()
