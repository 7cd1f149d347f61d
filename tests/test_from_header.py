import email
import email.policy
from pathlib import Path

import pytest
from helpers import contacts_yaml, run_cli, write_campaign


@pytest.mark.parametrize(
    ("sender", "lines", "name"),
    [
        pytest.param(
            "Global Centre for the Responsibility to Protect <office@globalr2p.example>",
            [
                b"From: Global Centre for the Responsibility to Protect",
                b" <office@globalr2p.example>",
            ],
            "Global Centre for the Responsibility to Protect",
            id="long-name",
        ),
        pytest.param(
            '"Doe, Jane (Office of the Special Adviser on the Prevention of Genocide)" <jane@un.example>',
            [
                b'From: "Doe, Jane (Office of the Special Adviser on the Prevention of',
                b' Genocide)" <jane@un.example>',
            ],
            "Doe, Jane (Office of the Special Adviser on the Prevention of Genocide)",
            id="quoted-name",
        ),
        pytest.param(
            "Centre mondial pour la responsabilit\u00e9 de prot\u00e9ger <bureau@r2p.example>",
            [
                b"From: =?utf-8?q?Centre_mondial_pour_la_responsabilit=C3=A9_de_prot=C3=A9ger?=",
                b" <bureau@r2p.example>",
            ],
            "Centre mondial pour la responsabilit\u00e9 de prot\u00e9ger",
            id="non-ascii-name",
        ),
    ],
)
def test_from_is_folded_after_the_name_not_before_it(
    tmp_path: Path, sender: str, lines: list[bytes], name: str
) -> None:
    """A long From header keeps the name on its first line and folds before the address."""
    write_campaign(tmp_path, contacts=contacts_yaml(1), sender=sender.replace('"', '\\"'))
    done = run_cli("preview", "--out", "drafts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = (tmp_path / "drafts" / "c00001.eml").read_bytes()
    assert data.startswith(b"\r\n".join(lines) + b"\r\nTo: ")
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    (address,) = parsed["From"].addresses
    assert (address.display_name, address.addr_spec) == (name, sender.rpartition("<")[2][:-1])
