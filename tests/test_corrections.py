import json
from pathlib import Path

from helpers import contacts_yaml, run_cli, smtp_env
from mailserver import Server

from outreach.sendlog import SendLog
from outreach.tracking import Kind, Sighting

LOG = Path("logs") / "test-campaign.sqlite3"


def bounce(folder: Path, *contact_ids: str) -> None:
    """Record a bounce for each recipient, as 'outreach track' would."""
    with SendLog(folder / LOG, campaign=None, write=True) as log:
        sightings = [
            Sighting(
                Kind.BOUNCED,
                uid=number,
                evidence=f"<bounce-{contact_id}@mx.mission.example>",
                at="2026-11-28T10:00:00.000+00:00",
                contact_id=contact_id,
                address=f"{contact_id}@mission.example",
                status_code="5.1.1",
                diagnostic="550 5.1.1 no such user",
                matched_by="message-id",
            )
            for number, contact_id in enumerate(contact_ids, start=1)
        ]
        log.record_track(sightings, folder="INBOX", uidvalidity=1, last_uid=len(sightings))


def test_corrected_address_is_sent_once_and_listed(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """After a bounce, a corrected address gets the letter once; an unchanged one does not."""
    env = smtp_env(smtp_server, ca_file)
    send = ("send", "--yes", "--allow-reserved-domains")
    assert run_cli(*send, cwd=campaign_dir, env=env).returncode == 0
    bounce(campaign_dir, "c00002", "c00003")
    contacts = campaign_dir / "contacts.yaml"
    contacts.write_text(
        contacts_yaml(5).replace("c00002@mission.example", "c00002@fixed-mission.example"),
        encoding="utf-8",
    )
    again = run_cli(*send, cwd=campaign_dir, env=env)
    assert again.returncode == 0, again.stderr
    assert "  c00002: c00002@fixed-mission.example\n" in again.stdout
    assert (
        "corrected address: c00002 bounced at c00002@mission.example; "
        "now sent to c00002@fixed-mission.example\n"
    ) in again.stdout
    assert "sent 1, failed 0, uncertain 0, not sent 0" in again.stdout
    received = smtp_server.handler.received
    assert [r.rcpt_tos for r in received[5:]] == [["c00002@fixed-mission.example"]]
    third = run_cli(*send, cwd=campaign_dir, env=env)
    assert "sent 0, failed 0, uncertain 0, not sent 0" in third.stdout
    assert len(smtp_server.handler.received) == 6


def test_log_keeps_both_addresses_histories(
    campaign_dir: Path, smtp_server: Server, ca_file: Path
) -> None:
    """The corrected recipient's log shows the old attempt and bounce, and the new attempt."""
    env = smtp_env(smtp_server, ca_file)
    send = ("send", "--yes", "--allow-reserved-domains")
    run_cli(*send, cwd=campaign_dir, env=env)
    bounce(campaign_dir, "c00002")
    contacts = campaign_dir / "contacts.yaml"
    contacts.write_text(
        contacts_yaml(5).replace("c00002@mission.example", "c00002@fixed-mission.example"),
        encoding="utf-8",
    )
    run_cli(*send, cwd=campaign_dir, env=env)
    record = json.loads(run_cli("log", "c00002", "--json", cwd=campaign_dir).stdout)
    assert [(a["attempt"], a["email"]) for a in record["history"]] == [
        (1, "c00002@mission.example"),
        (2, "c00002@fixed-mission.example"),
    ]
    first, second = (a["message_id"] for a in record["history"])
    assert first != second
    assert [(e["kind"], e["address"]) for e in record["events"]] == [
        ("bounced", "c00002@mission.example")
    ]
    assert (record["email"], record["status"], record["delivery"]) == (
        "c00002@fixed-mission.example",
        "sent",
        "no-news",
    )
