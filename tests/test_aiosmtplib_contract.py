"""What outreach.transport relies on from aiosmtplib, below and beside its documented API.

``outreach.transport.smtp`` connects, secures and logs in through aiosmtplib; then
``outreach.transport.transaction`` takes over the connection's protocol to pipeline commands.
Each test pins one behaviour that hand-over depends on, so that an aiosmtplib release that
changes it fails here, by name, rather than somewhere in a batch.
"""

import asyncio
import ssl
from collections.abc import Callable

import aiosmtplib
import aiosmtplib.protocol
import pytest
from hostile import hostile_server
from mailserver import PASSWORD, USERNAME, Server

from outreach.transport import transaction


async def connected(server: Server, tls: ssl.SSLContext, **kwargs: object) -> aiosmtplib.SMTP:
    """Return a client connected to ``server`` as SmtpTransport connects, STARTTLS done."""
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=server.port, tls_context=tls, timeout=10, **kwargs
    )
    await client.connect()
    return client


async def test_after_connect_the_client_exposes_its_transport(
    smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """client.transport is an asyncio.Transport whose protocol can be replaced."""
    client = await connected(smtp_server, client_tls)
    try:
        assert isinstance(client.transport, asyncio.Transport)
        assert callable(client.transport.set_protocol)
        assert not client.transport.is_closing()
    finally:
        client.close()


async def test_a_protocol_set_on_the_transport_receives_the_replies(
    smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Once the project's protocol is set, replies to what it writes come to it, over TLS too."""
    client = await connected(smtp_server, client_tls)
    await client.login(USERNAME, PASSWORD)
    assert isinstance(client.transport, asyncio.Transport)
    replies = transaction._Replies(client.transport, timeout=10)
    try:
        replies.write(b"NOOP\r\n")
        reply = await replies.read()
        assert reply.code == 250
    finally:
        replies.close()
        client.close()


@pytest.mark.parametrize("offered", [False, True], ids=["not-offered", "offered"])
async def test_supports_extension_tells_whether_pipelining_is_offered(
    make_server: Callable[..., Server], client_tls: ssl.SSLContext, offered: bool
) -> None:
    """supports_extension('pipelining') follows the EHLO after STARTTLS, asked in lower case."""
    server = make_server(pipelining=offered)
    client = await connected(server, client_tls)
    try:
        await client.ehlo()  # as the login, or SmtpTransport itself, does after STARTTLS
        assert client.supports_extension("pipelining") is offered
    finally:
        client.close()


async def test_transport_info_names_the_tls_context_only_when_encrypted(
    make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """get_transport_info('sslcontext') is None in clear text and set after STARTTLS."""
    clear = make_server(tls_context=None, auth=False)
    client = await connected(clear, client_tls, start_tls=False)
    try:
        assert client.get_transport_info("sslcontext") is None
    finally:
        client.close()
    secured = make_server()
    client = await connected(secured, client_tls, start_tls=True)
    try:
        assert client.get_transport_info("sslcontext") is not None
    finally:
        client.close()


async def test_after_starttls_the_server_must_be_greeted_again(
    smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """is_ehlo_or_helo_needed is true after STARTTLS until ehlo() is called."""
    client = await connected(smtp_server, client_tls, start_tls=True)
    try:
        assert client.is_ehlo_or_helo_needed
        await client.ehlo()
        assert not client.is_ehlo_or_helo_needed
    finally:
        client.close()


def test_a_reply_is_a_code_and_a_message() -> None:
    """SMTPResponse is built from (code, message) and read by those two names."""
    reply = aiosmtplib.SMTPResponse(250, "2.0.0 OK")
    assert (reply.code, reply.message) == (250, "2.0.0 OK")
    assert tuple(reply) == (250, "2.0.0 OK")


def test_status_codes_the_transaction_compares_with() -> None:
    """SMTPStatus names the codes the transaction reads: 250, 354, 421 and -1 for not SMTP."""
    status = aiosmtplib.SMTPStatus
    assert (status.completed, status.start_input, status.domain_unavailable) == (250, 354, 421)
    assert status.invalid_response == -1


def test_the_exception_classes_keep_their_shape_and_family() -> None:
    """The errors raised and caught by the transport exist, nest as expected and carry code and message."""
    assert issubclass(aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPException)
    assert issubclass(aiosmtplib.SMTPReadTimeoutError, aiosmtplib.SMTPTimeoutError)
    assert issubclass(aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPException)
    assert issubclass(aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPResponseException)
    assert issubclass(aiosmtplib.SMTPHeloError, aiosmtplib.SMTPResponseException)
    error = aiosmtplib.SMTPResponseException(-1, "Malformed SMTP response: x")
    assert (error.code, error.message) == (-1, "Malformed SMTP response: x")


def test_reply_bounds_are_aiosmtplibs() -> None:
    """The transaction bounds a reply line and a whole reply as aiosmtplib does."""
    assert transaction.MAX_REPLY_LINE == aiosmtplib.protocol.MAX_LINE_LENGTH
    assert transaction.MAX_REPLY == aiosmtplib.protocol.MAX_RESPONSE_LENGTH


async def test_required_starttls_not_offered_names_starttls() -> None:
    """start_tls=True against a server without STARTTLS raises an error that names it."""
    with hostile_server() as server:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=True, timeout=5)
        with pytest.raises(aiosmtplib.SMTPException, match="STARTTLS"):
            await client.connect()
        client.close()


async def test_close_after_the_transport_was_taken_over_is_quiet(
    smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """client.close() on a connection whose protocol was replaced raises nothing."""
    client = await connected(smtp_server, client_tls)
    assert isinstance(client.transport, asyncio.Transport)
    replies = transaction._Replies(client.transport, timeout=10)
    replies.close()
    client.close()
    assert not client.is_connected
