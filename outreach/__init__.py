"""Send a personalized letter to every contact on a list, once each, with a send log."""

from outreach.errors import (
    ConfigError,
    InputError,
    LogLockedError,
    OutreachError,
    Problem,
    SendLogError,
    TransportError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "InputError",
    "LogLockedError",
    "OutreachError",
    "Problem",
    "SendLogError",
    "TransportError",
    "__version__",
]
