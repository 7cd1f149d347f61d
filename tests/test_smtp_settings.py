import asyncio
import random

import pytest
from helpers import contacts_yaml, run_cli, write_campaign

from outreach.errors import ConfigError
from outreach.ratelimit import Rate, RateLimiter, parse_rate
from outreach.transport import is_loopback, parse_smtp_url


@pytest.mark.parametrize(
    ("url", "host", "port", "implicit", "user"),
    [
        ("smtp://mail.example.net", "mail.example.net", 587, False, None),
        ("smtp://me@mail.example.net:2525", "mail.example.net", 2525, False, "me"),
        ("smtps://me%40org@mail.example.net", "mail.example.net", 465, True, "me@org"),
        ("smtp://[::1]:25", "::1", 25, False, None),
    ],
)
def test_smtp_urls_parse_to_settings(
    url: str, host: str, port: int, implicit: bool, user: str | None
) -> None:
    """smtp:// and smtps:// URLs give host, port (587 and 465 by default), TLS mode and user."""
    settings = parse_smtp_url(url)
    assert (settings.host, settings.port, settings.implicit_tls, settings.username) == (
        host,
        port,
        implicit,
        user,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("smtp://me:secret@mail.example.net", "do not put the password in the URL"),
        ("http://mail.example.net", "unknown scheme 'http'"),
        ("smtp://mail.example.net:99999", "the port is not a number from 1 to 65535"),
        ("smtp://mail.example.net/path", "a URL with a path or query is not understood"),
        ("smtp://", "no host"),
    ],
)
def test_bad_smtp_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    """A URL with a password, another scheme, a bad port, a path or no host is refused."""
    with pytest.raises(ConfigError, match=message) as caught:
        parse_smtp_url(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("mail.example.net", False),
        ("10.0.0.1", False),
        ("localhost.example.org", False),
    ],
)
def test_tls_is_required_for_every_host_off_this_machine(host: str, loopback: bool) -> None:
    """Only loopback hosts may be reached (and given a password) without TLS."""
    assert is_loopback(host) is loopback
    settings = parse_smtp_url(f"smtp://user@[{host}]" if ":" in host else f"smtp://user@{host}")
    assert settings.tls_required is not loopback


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("30/min", Rate(30, 60.0)),
        ("5/s", Rate(5, 1.0)),
        ("500/h", Rate(500, 3600.0)),
        ("10 / minute", Rate(10, 60.0)),
        ("2/hours", Rate(2, 3600.0)),
    ],
)
def test_rates_parse(text: str, rate: Rate) -> None:
    """Rates are a count per second, minute or hour."""
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0/min", "fast", "5/fortnight", "-3/s", "5"])
def test_bad_rates_are_refused(text: str) -> None:
    """A rate that is zero, negative or in an unknown unit is refused."""
    with pytest.raises(ConfigError, match="expected messages per unit"):
        parse_rate(text)


def most_in_any_window(times: list[float], length: float) -> int:
    """Return the most of ``times`` that fall in any window of ``length`` seconds."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t - start < length) for i, start in enumerate(times))


# The rate limiter runs on the event loop's clock, which looptime moves on at once; rates and
# durations are chosen so that binary floating point holds every instant exactly.


@pytest.mark.looptime
async def test_uneven_sends_stay_under_the_rate_in_its_period_and_in_every_second() -> None:
    """32 per 2 s, sends lasting 0 to 62.5 ms: at most 32 in any 2 s and 16 in any second."""
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(Rate(32, 2.0), clock=loop.time)
    rng = random.Random(7)
    starts: list[float] = []
    ends: list[float] = []

    async def send(durations: list[float]) -> None:
        for duration in durations:
            await limiter.acquire()
            starts.append(loop.time())
            await asyncio.sleep(duration)
            ends.append(loop.time())
            limiter.release()

    durations = [rng.choice([0.0, 1 / 64, 1 / 16]) for _ in range(64)]
    await asyncio.gather(*(send(durations[n::4]) for n in range(4)))
    assert len(ends) == 64
    for seen in (starts, ends):  # the server sees each message between the two
        assert most_in_any_window(seen, 2.0) <= 32
        assert most_in_any_window(seen, 1.0) <= 16


@pytest.mark.looptime
async def test_the_limiter_paces_evenly_and_loses_no_time() -> None:
    """At 4/s with instant sends, the n-th send starts at n/4 s: no burst, no gap."""
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(Rate(4, 1.0), clock=loop.time)
    started = loop.time()
    starts: list[float] = []
    for _ in range(12):
        await limiter.acquire()
        starts.append(loop.time() - started)
        limiter.release()
    assert starts == [n / 4 for n in range(12)]


@pytest.mark.looptime
async def test_a_send_holds_its_place_in_the_window_until_a_period_after_it_ends() -> None:
    """At 2/s, with two sends taking 3 s, the third starts one period after the first ends."""
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(Rate(2, 1.0), clock=loop.time)
    started = loop.time()
    starts: list[float] = []

    async def send(duration: float) -> None:
        await limiter.acquire()
        starts.append(loop.time() - started)
        await asyncio.sleep(duration)
        limiter.release()

    await asyncio.gather(send(3.0), send(3.0), send(0.0))
    assert starts == [0.0, 0.5, 4.0]


@pytest.mark.parametrize(
    ("option", "url"),
    [
        ("--smtp", "smtp+tls://me:s3ntinel-url-41@mail.example"),
        ("--smtp", "smtp//me:s3ntinel-url-41@mail.example"),
        ("--smtp", "me:s3ntinel-url-41@mail.example"),
        ("--smtp", "smtp://me:s3ntinel-url-41@"),
        ("--imap", "imap+ssl://me:s3ntinel-url-41@mail.example"),
        ("--imap", "imaps//me:s3ntinel-url-41@mail.example"),
    ],
)
def test_a_password_typed_into_a_refused_url_is_never_shown(tmp_path, option, url):
    """A URL refused for any mistake is quoted with its password hidden, never as typed."""
    write_campaign(tmp_path, contacts=contacts_yaml(1))
    command = "track" if option == "--imap" else "send"
    done = run_cli(command, option, url, cwd=tmp_path)
    assert done.returncode == 1
    assert "s3ntinel-url-41" not in done.stdout + done.stderr
    assert done.stderr.startswith(f"error: {option}")
