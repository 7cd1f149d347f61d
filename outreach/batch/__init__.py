"""Run a send batch: each selected recipient gets its draft once, and the log says what happened.

Drafts are rendered into a short queue (in a second process for large batches), so memory does
not grow with the list; ``concurrency`` workers each hold one connection and take the next
draft when free; the send log is written by a ``Journal`` thread in group commits.

The pieces, each in a module of its own, and what each hands to the next:

- ``plan``: who this run sends to and why the others are left out (``choose``, the daily
  allowance, reserved domains). It sends nothing; its ``Plan`` is what a batch runs.
- ``run``: the ``Batch`` that ties the others together for one plan, and returns its
  ``Summary``; with nothing to send it opens no connection.
- ``produce``: renders the plan's drafts into the queue the lanes take them from.
- ``turn``: opens the connections, their logins one at a time until one has succeeded.
- ``lanes`` and ``link``: the workers, one a connection, each with one lane, or with
  several over SMTP with PIPELINING; a lane takes a recipient through its claim, send, record
  and retries.
- ``record``: writes the claims and settles to the send log and counts them in the summary.
- ``copies``: with ``send --save-sent``, hands each letter the server took, once recorded, to
  the copier, which saves it in the Sent folder from a thread of its own.
- ``control``: the stop every piece watches, and the first fatal error.
- ``testsend``: test sends, outside any batch.
"""

from outreach.batch.control import MAX_BACKOFF
from outreach.batch.copies import COPY_QUEUE_BYTES, Copier, Copies
from outreach.batch.link import CLAIMED, LANES
from outreach.batch.plan import (
    ALL_SENT,
    BOUNCED,
    DAILY,
    DAY,
    LATER,
    LIMITED,
    NOT_DUE,
    REPLIED,
    STOPPED,
    Allowance,
    Plan,
    SendOptions,
    check_reserved,
    choose,
    daily_allowance,
)
from outreach.batch.record import Event, Summary, throttled
from outreach.batch.run import Batch
from outreach.batch.testsend import SentCopy, send_test_copies

__all__ = [
    "ALL_SENT",
    "BOUNCED",
    "CLAIMED",
    "COPY_QUEUE_BYTES",
    "DAILY",
    "DAY",
    "LANES",
    "LATER",
    "LIMITED",
    "MAX_BACKOFF",
    "NOT_DUE",
    "REPLIED",
    "STOPPED",
    "Allowance",
    "Batch",
    "Copier",
    "Copies",
    "Event",
    "Plan",
    "SendOptions",
    "SentCopy",
    "Summary",
    "check_reserved",
    "choose",
    "daily_allowance",
    "send_test_copies",
    "throttled",
]
