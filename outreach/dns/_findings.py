"""A finding of the DNS checks: how serious, about what, what was found and what to do."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.StrEnum):
    """How much a finding matters: an error stops, a warning is said, ok is good news."""

    ERROR = "error"
    WARNING = "warning"
    OK = "ok"


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the DNS checks' table."""

    level: Level
    subject: str  # what was checked: a domain, "SPF of sender.example", a server
    found: str  # what was found, in a sentence
    todo: str = ""  # what to do about it; empty when nothing is to be done

    def __str__(self) -> str:
        """Say the finding on one line, what to do after it."""
        todo = f" {self.todo}" if self.todo else ""
        return f"{self.subject}: {self.found}.{todo}"
