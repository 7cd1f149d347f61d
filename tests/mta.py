"""A real MTA for the tests: Postfix on loopback that accepts mail and bounces it afterwards.

Postfix runs with a configuration folder of its own (``postfix -c DIR start-fg``), with its own
queue and data folders, listening on two loopback ports:

- the submission port, open to 127.0.0.0/8, takes any mail. Mail for ``BOUNCE_DOMAIN`` and
  ``DEFER_DOMAIN`` is relayed to the second port; mail for the sender's domain is delivered by
  Postfix's ``virtual`` agent into the Dovecot user's Maildir, where IMAP reads it;
- the second port plays the recipients' server: it refuses ``BOUNCE_DOMAIN`` with 550 5.1.1
  (Postfix then returns a delivery status notification to the sender) and ``DEFER_DOMAIN`` with
  450 4.2.2 (Postfix keeps retrying and, after ``delay_warning_time``, sends a delay notice).

With ``sasl`` the submission port also offers STARTTLS (a certificate from the test CA) and AUTH,
which Postfix hands to Dovecot's authentication service (``smtpd_sasl_type = dovecot``), as an
office's own server would.

Postfix's master needs root: without it the tests that use this server are skipped (failed on
CI, which runs as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from helpers import missing
from imapserver import USER, Dovecot, free_port, open_folder, start_dovecot, wait_for_port

POSTFIX = "/usr/sbin/postfix"
BOUNCE_DOMAIN = "bounce.example"
DEFER_DOMAIN = "defer.example"
SENDER_DOMAIN = USER.partition("@")[2]
MASTER_CF = """\
{listen} inet n - n - - smtpd
{refuse} inet n - n - - smtpd
  -o myhostname=mx.{bounce}
  -o smtpd_recipient_restrictions=check_recipient_access,texthash:{root}/refuse,reject
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
proxywrite unix - - n -     1 proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
virtual   unix  - n n -     - virtual
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@dataclass
class Postfix:
    """A running Postfix: where to submit, and how to wait for what it returns."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]
    dovecot: Dovecot

    @property
    def url(self) -> str:
        """The SMTP URL to submit to (loopback, no login)."""
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        """Postfix's log so far."""
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_mail(self, count: int, *, timeout: float = 60) -> list[Path]:
        """Wait until the user's Maildir holds ``count`` new messages; return their files."""
        new = self.dovecot.maildir / "new"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            files = sorted(new.glob("*")) if new.exists() else []
            if len(files) >= count:
                return files
            time.sleep(0.1)
        pytest.fail(f"Postfix returned fewer than {count} messages; its log:\n{self.log}")

    def stop(self) -> None:
        """Stop Postfix and every process it started."""
        subprocess.run(
            [POSTFIX, "-c", str(self.root / "etc"), "stop"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)


def start_postfix(root: Path, *, dovecot: Dovecot, sasl: bool = False) -> Postfix:
    """Start Postfix under ``root``, delivering the sender's mail into ``dovecot``'s Maildir.

    With ``sasl`` the submission port takes STARTTLS and AUTH, checked by ``dovecot``'s
    authentication service (started with ``sasl=True``).
    """
    if not Path(POSTFIX).exists():
        missing("Postfix is not installed (Debian: postfix)")
    if os.geteuid() != 0:
        missing("Postfix's master process must be started as root")
    etc, queue, data = root / "etc", root / "queue", root / "data"
    for folder in (etc, queue, data):
        folder.mkdir(mode=0o755)
    shutil.chown(data, "postfix")
    listen, refuse = free_port(), free_port()
    uid, gid = dovecot.owner
    (root / "transport").write_text(
        f"{BOUNCE_DOMAIN} smtp:[127.0.0.1]:{refuse}\n"
        f"{DEFER_DOMAIN} smtp:[127.0.0.1]:{refuse}\n"
        f"{SENDER_DOMAIN} virtual:\n",
        encoding="utf-8",
    )
    (root / "refuse").write_text(
        f"{BOUNCE_DOMAIN} 550 5.1.1 Recipient address rejected: User unknown\n"
        f"{DEFER_DOMAIN} 450 4.2.2 Mailbox full, try again later\n",
        encoding="utf-8",
    )
    # The user's mail, and the bounces sent back to per-recipient return paths
    # (bounces+ID@...), which the "+" delimiter files under bounces@....
    (root / "mailboxes").write_text(
        f"{USER} {USER}/Maildir/\nbounces@{SENDER_DOMAIN} {USER}/Maildir/\n", encoding="utf-8"
    )
    sasl_settings = ""
    if sasl:
        if dovecot.sasl_port is None:
            msg = "Postfix's SASL needs a Dovecot started with sasl=True"
            raise ValueError(msg)
        sasl_settings = textwrap.dedent(
            f"""\
            smtpd_tls_cert_file = {dovecot.root}/cert.pem
            smtpd_tls_key_file = {dovecot.root}/key.pem
            smtpd_tls_security_level = may
            smtpd_sasl_auth_enable = yes
            smtpd_sasl_type = dovecot
            smtpd_sasl_path = inet:127.0.0.1:{dovecot.sasl_port}
            """
        )
    (etc / "main.cf").write_text(
        textwrap.dedent(
            f"""\
            compatibility_level = 3.6
            queue_directory = {queue}
            data_directory = {data}
            command_directory = /usr/sbin
            daemon_directory = /usr/lib/postfix/sbin
            meta_directory = /etc/postfix
            shlib_directory = /usr/lib/postfix
            mail_owner = postfix
            setgid_group = postdrop
            maillog_file = {root}/maillog
            maillog_file_prefixes = {root}
            myhostname = mta.{SENDER_DOMAIN}
            mydomain = {SENDER_DOMAIN}
            myorigin = $myhostname
            mydestination =
            inet_interfaces = 127.0.0.1
            inet_protocols = ipv4
            mynetworks = 127.0.0.0/8
            relay_domains = {BOUNCE_DOMAIN}, {DEFER_DOMAIN}, {SENDER_DOMAIN}
            transport_maps = texthash:{root}/transport
            smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
            virtual_mailbox_base = {dovecot.home}
            virtual_mailbox_maps = texthash:{root}/mailboxes
            recipient_delimiter = +
            virtual_uid_maps = static:{uid}
            virtual_gid_maps = static:{gid}
            disable_dns_lookups = yes
            smtp_dns_support_level = disabled
            alias_maps =
            alias_database =
            biff = no
            queue_run_delay = 1s
            minimal_backoff_time = 1s
            maximal_backoff_time = 2s
            delay_warning_time = 2s
            """
        )
        + sasl_settings,
        encoding="utf-8",
    )
    (etc / "master.cf").write_text(
        MASTER_CF.format(
            listen=f"127.0.0.1:{listen}",
            refuse=f"127.0.0.1:{refuse}",
            bounce=BOUNCE_DOMAIN,
            root=root,
        )
        + ("tlsmgr    unix  - - n 1000? 1 tlsmgr\n" if sasl else ""),
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [POSTFIX, "-c", str(etc), "start-fg"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(root / "postfix.stderr").open("wb"),
    )
    server = Postfix(root=root, port=listen, process=process, dovecot=dovecot)
    try:
        wait_for_port(listen, process, root / "maillog", "Postfix")
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture
def postfix(dovecot: Dovecot) -> Iterator[Postfix]:
    """A Postfix that bounces mail for BOUNCE_DOMAIN back into the Dovecot user's INBOX."""
    with open_folder("outreach-postfix-") as root:
        server = start_postfix(root, dovecot=dovecot)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def sasl_postfix(ca: trustme.CA) -> Iterator[Postfix]:
    """A Postfix whose submission port takes STARTTLS and AUTH, checked by a Dovecot of its own."""
    with open_folder("outreach-dovecot-") as home, open_folder("outreach-postfix-") as root:
        dovecot = start_dovecot(home, ca=ca, sasl=True)
        try:
            server = start_postfix(root, dovecot=dovecot, sasl=True)
            try:
                yield server
            finally:
                server.stop()
        finally:
            dovecot.stop()
