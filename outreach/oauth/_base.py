"""Hold what every part of the OAuth2 sign-in shares: names, the token source, common errors.

Owns ``TokenSource`` and ``blocking_token``, the provider names and ``HTTP_TIMEOUT``, and the
helpers the flows use (a blocking call run in a thread with a time limit, the messages for a
missing extra, a sign-in to make again, or none made). Relies on ``outreach.errors`` only;
every other module of ``outreach.oauth`` imports it, and it imports none of them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from outreach.errors import AuthError, ConfigError, named

T = TypeVar("T")

MICROSOFT = "microsoft365"
GOOGLE = "google"
PROVIDERS = (MICROSOFT, GOOGLE)
EXTRA = "pip install 'outreach[oauth]'"
HTTP_TIMEOUT = 30.0  # seconds for one request to a token endpoint


class TokenSource(Protocol):
    """Give an access token that is valid now."""

    description: str

    async def token(self) -> str:
        """Return an access token, refreshed first when it is about to expire."""
        ...


def blocking_token(source: TokenSource, /) -> Callable[[], str]:
    """Return a plain function giving ``source``'s token, for a blocking client (IMAP)."""

    def token() -> str:
        return asyncio.run(source.token())

    return token


def missing_extra(exc: ImportError) -> ConfigError:
    """Say which library of the oauth extra is missing, and how to install it."""
    msg = (
        f"signing in with Microsoft 365 or Google needs the oauth extra ({exc.name} is "
        f"missing): {EXTRA}. {named('token_command')} works without it."
    )
    return ConfigError(msg)


def login_again(provider: str, user: str, why: str) -> AuthError:
    """Say that a kept sign-in can no longer be used, and how to sign in again."""
    hint = ""
    if provider == GOOGLE:
        hint = (
            " (an OAuth app left in 'testing' status gets refresh tokens that expire after "
            "7 days; publish it to keep them)"
        )
    msg = (
        f"the {provider} sign-in of {user} can no longer be used ({why}): run "
        f"'outreach login {provider} --user {user}' again{hint}. Nothing was sent."
    )
    return AuthError(msg)


async def in_thread(function: Callable[[], T], *, seconds: float, what: str) -> T:
    """Run a blocking call in a daemon thread; give up waiting after ``seconds``.

    A daemon thread, not the loop's executor: an abandoned call must not hold up the exit.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name=what, daemon=True).start()
    try:
        return await asyncio.wait_for(future, seconds)
    except TimeoutError:
        msg = f"{what}: no answer within {seconds:g} s; check the network and try again"
        raise AuthError(msg) from None


def first_line(text: object) -> str:
    """Return the first non-blank line of a library's message, or nothing."""
    return str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""


def not_signed_in(provider: str, user: str) -> AuthError:
    """Say that ``user`` has no sign-in kept with ``provider``, and how to make one."""
    msg = (
        f"{user} has not signed in with {provider} here: run 'outreach login {provider} "
        f"--user {user}' first, or give {named('token_command')}"
    )
    return AuthError(msg)
