"""OpenDKIM as the second, independent verifier of the letters outreach signs.

``opendkim -t FILE`` runs a message through the filter's verifying code (libopendkim, in C) and
prints the Authentication-Results header it would add. Its DNS goes through libunbound, which a
configuration of its own sends to the tests' DNS server on loopback (``forward-addr
127.0.0.1@PORT``), so the public key it checks against is the one the test publishes there, and
nothing leaves the machine.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path

from dnsserver import TestDnsServer
from helpers import need_program

_RESULT = re.compile(r"\bdkim=(\w+)")


def publish(dns_server: TestDnsServer, name: str, record: str) -> None:
    """Publish a TXT ``record`` at ``name`` in strings of at most 255 characters, as DNS carries it."""
    strings = " ".join(f'"{record[at : at + 255]}"' for at in range(0, len(record), 255))
    dns_server.add(f"{name}. TXT {strings}")


def opendkim_verify(data: bytes, dns_server: TestDnsServer, folder: Path) -> list[str]:
    """Return OpenDKIM's result for each DKIM signature of ``data`` (pass, fail, ...), in order.

    With -vvv the filter prints the Authentication-Results header it would insert.
    """
    opendkim = need_program("opendkim", package="opendkim")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "unbound.conf").write_text(
        textwrap.dedent(
            f"""\
            server:
                do-not-query-localhost: no
                module-config: "iterator"
            forward-zone:
                name: "."
                forward-addr: 127.0.0.1@{dns_server.port}
            """
        ),
        encoding="utf-8",
    )
    (folder / "opendkim.conf").write_text(
        textwrap.dedent(
            f"""\
            Mode v
            ResolverConfiguration {folder}/unbound.conf
            Syslog no
            AlwaysAddARHeader yes
            AuthservID tests
            """
        ),
        encoding="utf-8",
    )
    message = folder / "message.eml"
    message.write_bytes(data)
    done = subprocess.run(
        [opendkim, "-x", str(folder / "opendkim.conf"), "-t", str(message), "-vvv"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    header = done.stdout.partition("hname='Authentication-Results'")[2]
    return _RESULT.findall(header)
