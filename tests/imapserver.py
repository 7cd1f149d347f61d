"""A real IMAP server for the tests: Dovecot on loopback, with a configuration of its own.

Each server lives in a temporary folder: its configuration, a passwd-file with one user, the
user's Maildir, TLS with a certificate from the session's trustme CA, and its log. It listens on
127.0.0.1 only, with IMAP (STARTTLS) and IMAPS; passwords travel only inside TLS or on loopback.
A small proxy (``CuttingProxy``) can stand in front of it and cut the connection after a number
of bytes, as a server that dies in the middle of a FETCH would.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
import trustme
from helpers import IMAP_USER, missing
from imapclient import IMAPClient

USER = IMAP_USER
PASSWORD = "imap-s3ntinel-PASSWORD-4d2e"  # a sentinel: it must never show anywhere
DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mail_owner() -> tuple[int, int]:
    """Return the uid and gid the mail files belong to: ``nobody`` as root, else ourselves."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    return os.getuid(), os.getgid()


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    """Wait until something accepts on ``port``; fail with the server's log if it never does."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    text = log.read_text(errors="replace") if log.exists() else "(no log)"
    pytest.fail(f"{what} did not start listening on {port}:\n{text}")


@dataclass
class Dovecot:
    """A running Dovecot with one user, and ways to put messages into the user's mailbox."""

    root: Path
    imap_port: int
    imaps_port: int
    process: subprocess.Popen[bytes]
    config: Path
    owner: tuple[int, int]
    ca_file: Path
    delivered: int = field(default=0)
    sasl_port: int | None = None

    @property
    def home(self) -> Path:
        """The folder that holds every user's home (Postfix delivers under it too)."""
        return self.root / "home"

    @property
    def maildir(self) -> Path:
        """The user's Maildir (INBOX at its top, other folders as ``.Name``)."""
        return self.home / USER / "Maildir"

    def url(self, *, implicit_tls: bool = True, port: int | None = None) -> str:
        """Return the ``imaps://`` (or STARTTLS ``imap://``) URL of the user, with no password."""
        scheme = "imaps" if implicit_tls else "imap"
        port = port or (self.imaps_port if implicit_tls else self.imap_port)
        return f"{scheme}://{quote(USER, safe='')}@127.0.0.1:{port}"

    def tls_context(self) -> ssl.SSLContext:
        """Return a client context that trusts the server's certificate."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @contextlib.contextmanager
    def client(
        self, folder: str | None = "INBOX", *, readonly: bool = False
    ) -> Iterator[IMAPClient]:
        """Log in as the user (the tests' own client, for setting up and checking)."""
        client = IMAPClient(
            "127.0.0.1", port=self.imaps_port, ssl_context=self.tls_context(), timeout=30
        )
        try:
            client.login(USER, PASSWORD)
            if folder is not None:
                client.select_folder(folder, readonly=readonly)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, *messages: bytes, folder: str = "INBOX", flags: tuple[str, ...] = ()) -> None:
        """Append messages by IMAP APPEND, creating the folder when missing."""
        with self.client(None) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for message in messages:
                client.append(folder, message, flags=flags)

    def deliver(self, message: bytes, *, folder: str = "") -> Path:
        """Write a message straight into the Maildir's ``new/``, as a delivery agent would."""
        base = self.maildir / folder if folder else self.maildir
        for sub in ("tmp", "new", "cur"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        self.delivered += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self.delivered}.test,S={len(message)}"
        temporary = base / "tmp" / name
        temporary.write_bytes(message)
        final = base / "new" / name
        temporary.rename(final)
        self.chown()
        return final

    def chown(self) -> None:
        """Give every file under the homes to the mail owner, so that Dovecot can use them."""
        uid, gid = self.owner
        if os.geteuid() != 0:
            return
        for path in [self.home, *self.home.rglob("*")]:
            os.lchown(path, uid, gid)

    def log(self) -> str:
        """Return Dovecot's log so far."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def doveadm(self, *args: str) -> str:
        """Run ``doveadm`` against this server's configuration and return its output."""
        done = subprocess.run(
            [DOVEADM, "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def restart(self) -> None:
        """Start the stopped server again, with the same configuration, ports and mail."""
        self.stop()
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "dovecot.stderr").open("ab"),
            start_new_session=True,
        )
        wait_for_port(self.imaps_port, self.process, self.root / "dovecot.log", "Dovecot")
        wait_for_port(self.imap_port, self.process, self.root / "dovecot.log", "Dovecot")

    def set_password(self, password: str) -> None:
        """Give the user another password; Dovecot reads the file again at the next login."""
        (self.root / "passwd").write_text(f"{USER}:{{PLAIN}}{password}\n", encoding="utf-8")
        # Dovecot looks at the file's time at most once a second: a login in the same second
        # would still take the old password.
        time.sleep(1.1)

    def stop(self) -> None:
        """Stop the server and every process it started, its clients' connections with them."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        # The master leaves its imap and login processes running, with their connections.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def start_dovecot(
    root: Path,
    *,
    ca: trustme.CA,
    oauth2_introspection: str | None = None,
    oauth2_mechanisms: tuple[str, ...] = ("xoauth2", "oauthbearer"),
    sasl: bool = False,
    sent: bool = True,
) -> Dovecot:
    """Start Dovecot under ``root`` with one user, TLS and a password; skip if it is missing.

    With ``oauth2_introspection`` (an RFC 7662 endpoint's URL) it also takes ``XOAUTH2`` and
    ``OAUTHBEARER`` logins (or those of ``oauth2_mechanisms``), and asks that endpoint whether
    each token is active and whose.
    With ``sasl`` its authentication service also listens on a loopback port (``sasl_port``) for
    an MTA's SASL requests, and logs every failed login (``auth_verbose``). Without ``sent``
    no folder is marked as the Sent one, and none is called so.
    """
    if not Path(DOVECOT).exists() or not Path(DOVEADM).exists():
        missing("Dovecot is not installed (Debian: dovecot-core dovecot-imapd)")
    owner = mail_owner()
    uid, gid = owner
    home = root / "home"
    home.mkdir()
    if os.geteuid() == 0:
        os.chown(home, uid, gid)
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    cert.private_key_pem.write_to_path(str(root / "key.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n", encoding="utf-8")
    (root / "passwd").chmod(0o644)
    if os.geteuid() == 0:
        internal_user, login_user = "dovecot", "dovenull"
    else:
        internal_user = login_user = pwd.getpwuid(os.getuid()).pw_name
    imap_port, imaps_port = free_port(), free_port()
    mechanisms = "plain login"
    oauth2_passdb = ""
    sasl_port = free_port() if sasl else None
    # Indented as the lines of the configuration it is put into, which are dedented whole.
    sasl_service = (
        textwrap.indent(
            textwrap.dedent(
                f"""\
                auth_verbose = yes
                service auth {{
                  inet_listener sasl {{
                    address = 127.0.0.1
                    port = {sasl_port}
                  }}
                }}
                """
            ),
            " " * 12,
        ).lstrip()
        if sasl
        else ""
    )
    if oauth2_introspection is not None:
        mechanisms += " " + " ".join(oauth2_mechanisms)
        (root / "oauth2.conf.ext").write_text(
            textwrap.dedent(
                f"""\
                introspection_mode = post
                introspection_url = {oauth2_introspection}
                username_attribute = username
                active_attribute = active
                active_value = true
                tls_ca_cert_file = {root}/ca.pem
                """
            ),
            encoding="utf-8",
        )
        # Indented as the lines of the configuration it is put into, which are dedented whole.
        pad = " " * 12
        oauth2_passdb = (
            f"passdb {{\n{pad}  driver = oauth2\n{pad}  mechanisms = {' '.join(oauth2_mechanisms)}\n"
            f"{pad}  args = {root}/oauth2.conf.ext\n{pad}}}\n{pad}"
        )
    # Indented as the lines of the configuration it is put into, which are dedented whole.
    sent_folder = (
        "mailbox Sent {\n"
        + " " * 16
        + "special_use = \\Sent\n"
        + " " * 16
        + "auto = create\n"
        + " " * 14
        + "}"
        if sent
        else ""
    )
    config = root / "dovecot.conf"
    config.write_text(
        textwrap.dedent(
            f"""\
            instance_name = outreach-test-{imaps_port}
            base_dir = {root}/run
            state_dir = {root}/state
            log_path = {root}/dovecot.log
            protocols = imap
            listen = 127.0.0.1
            ssl = required
            ssl_cert = <{root}/cert.pem
            ssl_key = <{root}/key.pem
            auth_mechanisms = {mechanisms}
            auth_failure_delay = 0
            default_internal_user = {internal_user}
            default_login_user = {login_user}
            first_valid_uid = 1
            first_valid_gid = 1
            mail_location = maildir:~/Maildir
            namespace inbox {{
              inbox = yes
              {sent_folder}
              mailbox Junk {{
                special_use = \\Junk
              }}
            }}
            {oauth2_passdb}passdb {{
              driver = passwd-file
              args = scheme=PLAIN username_format=%u {root}/passwd
            }}
            userdb {{
              driver = static
              args = uid={uid} gid={gid} home={home}/%u
            }}
            service imap-login {{
              chroot =
              inet_listener imap {{
                address = 127.0.0.1
                port = {imap_port}
              }}
              inet_listener imaps {{
                address = 127.0.0.1
                port = {imaps_port}
                ssl = yes
              }}
            }}
            service anvil {{
              chroot =
            }}
            {sasl_service}"""
        ),
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(root / "dovecot.stderr").open("wb"),
        start_new_session=True,  # a group of its own: stop() ends the processes it started
    )
    server = Dovecot(
        root=root,
        imap_port=imap_port,
        imaps_port=imaps_port,
        process=process,
        config=config,
        owner=owner,
        ca_file=root / "ca.pem",
        sasl_port=sasl_port,
    )
    try:
        wait_for_port(imaps_port, process, root / "dovecot.log", "Dovecot")
        wait_for_port(imap_port, process, root / "dovecot.log", "Dovecot")
        if sasl_port is not None:
            wait_for_port(sasl_port, process, root / "dovecot.log", "Dovecot's auth service")
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def open_folder(prefix: str) -> Iterator[Path]:
    """Make a folder the servers' unprivileged users can reach, and remove it afterwards.

    pytest's own temporary folders are private to their owner (mode 0700 all the way down),
    which Dovecot's and Postfix's unprivileged processes could not enter.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def dovecot(ca: trustme.CA) -> Iterator[Dovecot]:
    """A Dovecot of this test's own, with one user and an empty INBOX."""
    with open_folder("outreach-dovecot-") as root:
        server = start_dovecot(root, ca=ca)
        try:
            yield server
        finally:
            server.stop()


class CuttingProxy:
    """Forward TCP to a server and cut every connection after ``limit`` bytes from the server.

    ``limit`` may be changed between connections; ``None`` forwards everything.
    """

    def __init__(self, target_port: int, *, limit: int | None) -> None:
        self.target_port = target_port
        self.limit = limit
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closing = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.target_port))
        limit = self.limit
        threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
        self._pump(server, client, limit)

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        passed = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if limit is not None and passed + len(data) >= limit:
                    sink.sendall(data[: limit - passed])
                    self.cuts += 1
                    break
                passed += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        """Stop accepting connections."""
        self._closing = True
        self._listener.close()
        self._thread.join(timeout=5)
