"""Shared fixtures: the repository's files, small campaigns, TLS material, real SMTP servers."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
from helpers import contacts_yaml, write_campaign
from mailserver import Server, start_server

# Fixtures of real servers that live in modules of their own (dns_server: tests/dnsserver.py).
pytest_plugins = ("dnsserver", "imapserver", "mta")


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A certificate authority made for this test session."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 and localhost."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the test CA only."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test CA as a PEM file, for SSL_CERT_FILE in child processes."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelined"])
def smtp_server(server_tls: ssl.SSLContext, request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server on loopback requiring STARTTLS and AUTH, recording what it receives.

    Every test runs twice: with a server that does not offer PIPELINING, and one that does.
    """
    server = start_server(tls_context=server_tls, pipelining=request.param)
    yield server
    assert server.controller is not None
    server.controller.stop()


@pytest.fixture
def make_server(server_tls: ssl.SSLContext) -> Iterator[Callable[..., Server]]:
    """Start servers with other settings; all are stopped after the test."""
    servers: list[Server] = []

    def make(**kwargs: object) -> Server:
        kwargs.setdefault("tls_context", server_tls)
        server = start_server(**kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        assert server.controller is not None
        server.controller.stop()


@pytest.fixture
def campaign_dir(tmp_path: Path) -> Path:
    """A folder holding a campaign of five contacts."""
    write_campaign(tmp_path / "campaign", contacts=contacts_yaml(5))
    return tmp_path / "campaign"
