import re
import ssl
import textwrap

import pytest
from helpers import snapshot
from imapserver import PASSWORD, USER, CuttingProxy, Dovecot

from outreach.errors import ConfigError, MailboxError
from outreach.mailbox import (
    Auth,
    Credentials,
    Cursor,
    ImapSettings,
    Mailbox,
    parse_imap_url,
)


def letter(number: int, *, size: int = 0) -> bytes:
    """Return a small plain message, padded to about ``size`` bytes of body when asked."""
    body = f"Message number {number}.\r\n" + ("x" * 76 + "\r\n") * (size // 78)
    head = textwrap.dedent(
        f"""\
        From: Someone <someone{number}@elsewhere.example>
        To: {USER}
        Subject: Message {number}
        Message-ID: <m{number}@elsewhere.example>

        """
    ).replace("\n", "\r\n")
    return (head + body).encode()


def password(value: str = PASSWORD) -> Credentials:
    """Return password credentials."""
    return Credentials(Auth.PASSWORD, lambda: value)


def open_box(dovecot: Dovecot, *, url: str | None = None, secret: str = PASSWORD) -> Mailbox:
    """Return a mailbox reader for the test server, trusting its CA."""
    settings = parse_imap_url(url or dovecot.url())
    return Mailbox(settings, credentials=password(secret), tls_context=dovecot.tls_context())


def read_all(box: Mailbox, folder_name: str = "INBOX", cursor: Cursor | None = None):
    """Examine a folder and read every new message whole; return the folder and the messages."""
    folder = box.examine(folder_name, cursor=cursor)
    messages = {}
    for heads in box.heads(folder):
        for head, data in box.bodies(heads):
            messages[head.uid] = data
    return folder, messages


def test_reads_headers_size_and_structure_of_new_messages(dovecot):
    """Examining a folder lists its messages; their heads carry headers, size and MIME types."""
    report = textwrap.dedent(
        f"""\
        From: Mail Delivery System <MAILER-DAEMON@mx.elsewhere.example>
        To: {USER}
        Subject: Undelivered Mail Returned to Sender
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="B"

        --B
        Content-Type: text/plain

        It failed.
        --B
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.elsewhere.example

        Final-Recipient: rfc822; c00001@mission.example
        Action: failed
        Status: 5.1.1
        --B--
        """
    ).replace("\n", "\r\n")
    dovecot.append(letter(1), report.encode())
    with open_box(dovecot) as box:
        folder = box.examine("INBOX", cursor=None)
        heads = [head for batch in box.heads(folder) for head in batch]
    assert [head.uid for head in heads] == list(folder.uids) == [1, 2]
    assert b"Subject: Message 1" in heads[0].header
    assert heads[0].structure == ("text/plain",)
    assert heads[1].structure == ("multipart/report", "text/plain", "message/delivery-status")
    assert heads[1].size == len(report.encode())


def test_reading_everything_leaves_flags_and_files_unchanged(dovecot):
    """Reading every message whole changes no flag, no content and no file of the Maildir."""
    dovecot.append(letter(1), letter(2))
    dovecot.append(letter(3), flags=("\\Flagged",))
    dovecot.deliver(letter(4))
    before = snapshot(dovecot)
    with open_box(dovecot) as box:
        _, messages = read_all(box)
    assert len(messages) == 4
    assert snapshot(dovecot) == before
    assert all(b"\\Seen" not in flags for flags, _ in before[0].values())


def test_a_cursor_reads_only_newer_messages(dovecot):
    """With the cursor of a first reading, a second one returns only the mail that came since."""
    dovecot.append(letter(1), letter(2))
    with open_box(dovecot) as box:
        first, _ = read_all(box)
    dovecot.append(letter(3))
    with open_box(dovecot) as box:
        second, messages = read_all(box, cursor=first.cursor)
        third = box.examine("INBOX", cursor=second.cursor)
    assert first.uids == (1, 2)
    assert second.uids == (3,)
    assert b"Message number 3." in messages[3]
    assert third.uids == ()
    assert not second.reset


def test_a_cursor_past_the_last_uid_returns_nothing(dovecot):
    """UID n:* names the highest message even when n is above it; that message is not new."""
    dovecot.append(letter(1), letter(2), letter(3))
    with dovecot.client() as client:
        client.delete_messages([3])
        client.expunge()
    with open_box(dovecot) as box:
        folder = box.examine("INBOX", cursor=None)
        again = box.examine("INBOX", cursor=folder.cursor)
    assert folder.uids == (1, 2)
    assert again.uids == ()


def test_a_changed_uidvalidity_reads_the_folder_again(dovecot):
    """When UIDVALIDITY changes, the cursor no longer holds: every message is new again."""
    dovecot.append(letter(1), letter(2))
    with open_box(dovecot) as box:
        first = box.examine("INBOX", cursor=None)
    dovecot.doveadm(
        "mailbox", "update", "-u", USER, "--uid-validity", str(first.uidvalidity + 7), "INBOX"
    )
    with open_box(dovecot) as box:
        second = box.examine("INBOX", cursor=first.cursor)
    assert second.reset
    assert second.uidvalidity == first.uidvalidity + 7
    assert second.uids == (1, 2)


def test_starttls_on_the_plain_port(dovecot):
    """imap:// upgrades the connection with STARTTLS before logging in."""
    dovecot.append(letter(1))
    with open_box(dovecot, url=dovecot.url(implicit_tls=False)) as box:
        _, messages = read_all(box)
        assert box.client._starttls_done
    assert list(messages) == [1]


def test_a_wrong_password_is_a_clear_error_that_shows_no_password(dovecot):
    """A refused login names the server and what to check, no option, never the password tried."""
    wrong = "wr0ng-s3ntinel-9c1a"
    with pytest.raises(MailboxError) as caught:
        open_box(dovecot, secret=wrong).connect()
    message = str(caught.value)
    assert "login refused" in message
    assert dovecot.url() in message
    # Which option or variable gave the password is for the caller to say (Credentials.source).
    assert message.endswith("; check the user name and the password")
    assert wrong not in message
    assert PASSWORD not in message


def test_an_untrusted_certificate_is_refused(dovecot):
    """A certificate that the system's trust store does not know stops the connection."""
    settings = parse_imap_url(dovecot.url())
    box = Mailbox(settings, credentials=password(), tls_context=ssl.create_default_context())
    with pytest.raises(MailboxError, match=r"certificate is not trusted.*SSL_CERT_FILE"):
        box.connect()


def test_an_unknown_folder_names_the_folders_there(dovecot):
    """Asking for a folder that does not exist lists those that do."""
    dovecot.append(letter(1), folder="Junk")
    with open_box(dovecot) as box, pytest.raises(MailboxError, match=r"no folder 'Spam'.*Junk"):
        box.examine("Spam", cursor=None)


def test_a_connection_cut_during_a_fetch_is_an_error_and_the_next_reading_works(dovecot):
    """A server that drops the connection in the middle of a FETCH raises; reading again works."""
    dovecot.append(*(letter(n, size=20_000) for n in range(1, 11)))
    proxy = CuttingProxy(dovecot.imaps_port, limit=60_000)
    try:
        url = dovecot.url(port=proxy.port)
        with (
            pytest.raises(MailboxError, match=r"connection was lost|TLS error"),
            open_box(dovecot, url=url) as box,
        ):
            read_all(box)
        assert proxy.cuts == 1
        proxy.limit = None
        with open_box(dovecot, url=url) as box:
            _, messages = read_all(box)
    finally:
        proxy.close()
    assert sorted(messages) == list(range(1, 11))


def test_a_message_over_the_size_bound_is_never_fetched(dovecot):
    """A 50 MB message is listed with its size but never downloaded."""
    dovecot.append(letter(1))
    dovecot.deliver(letter(2, size=51 * 1024 * 1024))
    dovecot.append(letter(3))
    with open_box(dovecot) as box:
        folder = box.examine("INBOX", cursor=None)
        heads = [head for batch in box.heads(folder) for head in batch]
        fetched = [head.uid for head, _ in box.bodies(heads)]
    big = [head for head in heads if head.too_large()]
    assert len(heads) == 3
    assert len(big) == 1
    assert big[0].size > 50 * 1024 * 1024
    assert sorted(fetched) == sorted(head.uid for head in heads if head is not big[0])
    sent = [int(n) for n in re.findall(r"Logged out in=\d+ out=(\d+)", dovecot.log())]
    assert sent
    assert max(sent) < 1024 * 1024


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("imaps://user:secret@mail.example", "do not put the password in the URL"),
        ("pop3://user@mail.example", "unknown scheme 'pop3'"),
        ("imaps://mail.example", "no user to log in as"),
        ("imaps://user@mail.example/INBOX", "a URL with a path or query is not understood"),
        ("imaps://user@mail.example:99999", "the port is not a number"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url, error):
    """A URL that cannot be used is refused with what is wrong and how to write it."""
    with pytest.raises(ConfigError, match=error) as caught:
        parse_imap_url(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "imaps://user@mail.example",
            ImapSettings(host="mail.example", port=993, implicit_tls=True, username="user"),
        ),
        (
            "imap://user@mail.example",
            ImapSettings(host="mail.example", port=143, implicit_tls=False, username="user"),
        ),
        (
            "imaps://me%40org.example@127.0.0.1:1993",
            ImapSettings(host="127.0.0.1", port=1993, implicit_tls=True, username="me@org.example"),
        ),
    ],
)
def test_urls_give_host_port_tls_and_user(url, expected):
    """A URL gives the host, the port (993 for imaps, 143 for imap), TLS and the user."""
    assert parse_imap_url(url) == expected


def test_tls_is_required_away_from_loopback():
    """Clear text is allowed on loopback only, unless TLS is required there too."""
    assert parse_imap_url("imap://u@mail.example").tls_required
    assert not parse_imap_url("imap://u@127.0.0.1").tls_required


def test_appends_a_copy_to_the_folder_marked_sent(dovecot):
    """The Sent folder is found by its special-use mark, and a copy lands there, flagged read."""
    with open_box(dovecot) as box:
        sent = box.sent_folder()
        box.append(sent, letter(1))
    assert sent == "Sent"
    with dovecot.client("Sent", readonly=True) as client:
        fetched = client.fetch(client.search("ALL"), ["FLAGS", "BODY.PEEK[]"])
    ((item),) = fetched.values()
    assert b"\\Seen" in item[b"FLAGS"]
    assert item[b"BODY[]"] == letter(1)
