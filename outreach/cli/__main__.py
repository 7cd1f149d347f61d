"""Run the command line as ``python -m outreach.cli``, as ``python -m outreach`` does."""

from outreach.cli import main

main()
