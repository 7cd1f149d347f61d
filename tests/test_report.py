import base64
import datetime as dt
import json
import re
import subprocess
import sys
import textwrap
from collections import Counter
from html import unescape
from pathlib import Path

import pytest
from helpers import Clock, need_program, run_cli
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

import outreach
from outreach import logview
from outreach.model import Contact
from outreach.sendlog import SendLog, Status
from outreach.tracking import Kind, Sighting

HOSTILE = '</table><script>window.pwned = 1</script><img src=x onerror="window.pwned=2"> \'quoted\' & "double"'
START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
# How many recipients get each state; the no-news ones make the table span pages when printed.
PLAN = {
    "no-news": 40,
    "delivered": 3,
    "delayed": 2,
    "bounced": 4,
    "replied": 3,
    "auto-replied": 2,
    "pending": 5,
    "sending": 1,
    "failed": 2,
    "uncertain": 1,
}


def contacts() -> list[Contact]:
    """Return the contacts of the plan, in list order, each id naming its state."""
    found = []
    for state, count in PLAN.items():
        for number in range(1, count + 1):
            word = state.replace("-", "")
            found.append(Contact(id=f"{word}-{number}", email=f"{word}{number}@mission.example"))
    return found


def write_campaign(folder: Path) -> Path:
    """Write a campaign whose contact list names each contact and its mission; one is hostile."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "letter.md.j2").write_text("Dear {{ name }},\n\nA letter.\n", encoding="utf-8")
    lines = ["contacts:"]
    for contact in contacts():
        name = HOSTILE if contact.id == "replied-1" else f"Ambassador {contact.id.title()}"
        lines += [
            f"  - id: {contact.id}",
            f"    email: {contact.email}",
            f"    name: {json.dumps(name)}",
            f"    mission: Permanent Mission {contact.id}",
        ]
    (folder / "contacts.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "campaign.toml").write_text(
        textwrap.dedent(
            """\
            name = "spring"
            subject = "An open letter <on> the \\"crisis\\""
            template = "letter.md.j2"
            contacts = "contacts.yaml"
            from = "Office <office@ngo.example>"

            [[follow_up]]
            name = "reminder"
            template = "letter.md.j2"
            after = "2d"
            """
        ),
        encoding="utf-8",
    )
    return folder / "campaign.toml"


def sighting(kind: Kind, contact: Contact, at: dt.datetime, **fields: str) -> Sighting:
    """Return one event of ``kind`` about ``contact``'s letter."""
    return Sighting(
        kind,
        uid=1,
        evidence=f"<{kind}-{contact.id}@mx.example>",
        at=at.isoformat(timespec="milliseconds"),
        contact_id=contact.id,
        address=contact.email,
        matched_by="message-id",
        **fields,
    )


def news_of(state: str, contact: Contact, at: dt.datetime) -> list[Sighting]:
    """Return what came back for a letter sent whose recipient is planned in ``state``."""
    if state == "bounced":
        fields = {"status_code": "5.1.1", "diagnostic": '550 5.1.1 user unknown <"x">'}
        return [sighting(Kind.BOUNCED, contact, at, **fields)]
    if state == "replied":
        excerpt = "Thank you for your letter.\nWe will answer next week."
        if contact.id == "replied-1":
            excerpt = HOSTILE
        sender = "Mission <m@mission.example>"
        return [sighting(Kind.REPLIED, contact, at, sender=sender, excerpt=excerpt)]
    if state in {"delivered", "delayed"}:
        return [sighting(Kind(state), contact, at)]
    if state == "autoreplied":
        return [sighting(Kind.AUTO_REPLIED, contact, at)]
    return []


# How a claimed letter is settled, by the state planned: status, outcome, code, text.
SETTLED = {
    "failed": (Status.FAILED, "permanent", 550, "5.7.1 relay access denied"),
    "uncertain": (Status.UNCERTAIN, "uncertain", None, "connection lost after the data"),
}


def write_log(
    path: Path, *, transport: str = "smtp://office@relay.example:587", live: bool = True
) -> None:
    """Write a log with every state, over three days, through the send log's API."""
    clock = Clock(START)
    everyone = contacts()
    with SendLog(path, campaign="spring", write=True, clock=clock) as log:
        log.register(everyone)
        log.start_run(transport, live=live)
        sightings = []
        for index, contact in enumerate(everyone):
            state = contact.id.rsplit("-", 1)[0]
            if state == "pending":
                continue
            clock.now = START + dt.timedelta(days=index % 2, minutes=index)
            log.claim(contact.id, message_id=f"<{contact.id}@ngo.example>", content_hash="ab")
            if state == "sending":
                continue
            status, outcome, code, text = SETTLED.get(
                state, (Status.SENT, "sent", 250, "2.0.0 queued")
            )
            log.settle(contact.id, status=status, outcome=outcome, code=code, text=text)
            sightings += news_of(state, contact, clock.now + dt.timedelta(days=1))
        # A reminder, the follow-up stage, to the first ten that had no news, two days on.
        for contact in everyone[:10]:
            clock.now = START + dt.timedelta(days=2, hours=1)
            log.claim(
                contact.id,
                message_id=f"<r-{contact.id}@ngo.example>",
                content_hash="cd",
                stage="reminder",
            )
            log.settle(
                contact.id,
                status=Status.SENT,
                outcome="sent",
                code=250,
                text="2.0.0 queued",
                stage="reminder",
            )
        clock.now = START + dt.timedelta(days=2, hours=8)
        log.end_run("complete")
        log.stop(["nonews-12"], reason="answered by phone <and> said 'no more'")
        log.record_track(sightings, folder="INBOX", uidvalidity=1, last_uid=1)


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    """Write a campaign and its live log with every state; return the campaign file."""
    path = write_campaign(tmp_path / "spring")
    write_log(path.parent / "logs" / "spring.sqlite3")
    return path


@pytest.fixture(scope="module")
def browser():
    """Start Debian's headless Chromium through chromedriver, with the network cut off."""
    chromium = need_program("chromium", package="chromium")
    driver_path = need_program("chromedriver", package="chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    yield driver
    driver.quit()


def page_of(campaign_file: Path) -> Path:
    """Write the campaign's report through the Python API; return its path."""
    path = outreach.report(outreach.load_campaign(campaign_file))
    return Path(path)


def counts_on(driver) -> dict[str, int]:
    """Read the totals the page shows, as rendered."""
    cells = driver.find_elements("css selector", "table.numbers td[data-count]")
    return {cell.get_attribute("data-count"): int(cell.text) for cell in cells}


def visible_ids(driver) -> list[str]:
    """Return the contact ids of the table's rows the browser shows."""
    rows = driver.find_elements("css selector", "#people tbody tr")
    return [row.find_element("css selector", "small").text for row in rows if row.is_displayed()]


def test_numbers_on_the_page_are_those_of_log_json(campaign: Path, browser) -> None:
    """Offline, the rendered totals equal the states of 'log --json' counted, one per state."""
    page = page_of(campaign)
    browser.get(page.as_uri())
    shown = counts_on(browser)
    result = run_cli("log", "--json", cwd=campaign.parent)
    assert result.returncode == 0, result.stderr
    states = Counter(json.loads(line)["state"] for line in result.stdout.splitlines())
    assert states == Counter(PLAN)
    expected = {state: states[state] for state in shown if state != "sent"}
    expected["sent"] = sum(states[word] for word in logview.NEWS)
    assert shown == expected
    assert shown["sent"] == 54
    said = browser.find_element("id", "said").text
    assert said == result_totals(campaign)
    # Nothing was fetched: the page has no resource but itself.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0


def result_totals(campaign: Path) -> str:
    """Return the totals line 'outreach log' prints for the campaign's log."""
    result = run_cli("log", cwd=campaign.parent, env={"COLUMNS": "300"})
    return result.stdout.splitlines()[-1]


def test_page_shows_the_campaign_the_timeline_and_what_is_owed(campaign: Path, browser) -> None:
    """The facts, a day per column of the timeline, and the owed groups with their commands."""
    browser.get(page_of(campaign).as_uri())
    facts = browser.find_element("id", "campaign").text
    assert 'An open letter <on> the "crisis"' in facts
    assert "Office <office@ngo.example>" in facts
    assert "smtp://office@relay.example:587" in facts
    assert "2026-11-02 09:" in facts
    assert browser.find_element("id", "letters").text == (
        "63 recipients; 54 first letters and 10 follow-ups (reminder: 10) sent, "
        "by 1 run that handed over at least one letter"
    )
    assert browser.find_element("id", "stages").text == (
        "2: the first letter; reminder, 10 sent; follow-ups stopped for 1"
    )
    stopped = browser.find_element("css selector", "#people tbody tr:nth-child(12)")
    assert stopped.find_element("css selector", "td:nth-child(7)").text == (
        "follow-ups stopped: answered by phone <and> said 'no more'"
    )
    assert "follow-ups stopped 2026-11-04 17:00" in stopped.text
    days = browser.find_elements("css selector", "table.days tbody tr")
    cells = [
        [td.get_attribute("textContent") for td in row.find_elements("tag name", "td")]
        for row in days
    ]
    assert cells == [
        ["2026-11-02", "27", "0", "0"],
        ["2026-11-03", "27", "2", "1"],
        ["2026-11-04", "10", "2", "2"],
    ]
    times = browser.find_element("css selector", '#people tr[data-state="no-news"] td:nth-child(5)')
    assert times.text.splitlines() == ["sent 2026-11-02 09:00", "reminder sent 2026-11-04 10:00"]
    replied = browser.find_element(
        "css selector", '#people tr[data-state="auto-replied"] td:nth-child(5)'
    )
    assert replied.text.splitlines()[1].startswith("auto-replied 2026-11-0")
    owed = {
        (li.get_attribute("data-stage"), li.get_attribute("data-owed")): li.text
        for li in browser.find_elements("css selector", "#owed li")
    }
    first = {state for stage, state in owed if stage == "first"}
    assert first == {"pending", "sending", "failed", "uncertain", "bounced"}
    assert "outreach send --retry-failed" in owed["first", "failed"]
    assert "outreach send --resend-uncertain" in owed["first", "uncertain"]
    assert owed["first", "pending"].startswith("5 pending")
    assert "pending-1, pending-2, pending-3, pending-4, pending-5" in owed["first", "pending"]
    # Sent, with no reminder yet: neither replied, bounced nor stopped (54 - 10 - 3 - 4 - 1).
    assert owed["reminder", "due"].startswith("reminder: 36 due: due now")
    assert set(owed) == {("first", state) for state in first} | {("reminder", "due")}


def test_a_filter_shows_the_rows_of_its_state(campaign: Path, browser) -> None:
    """Clicking 'bounced' shows the four bounced rows only; 'all' shows every row again."""
    browser.get(page_of(campaign).as_uri())
    assert len(visible_ids(browser)) == 63
    browser.find_element("css selector", 'button[data-filter="bounced"]').click()
    assert visible_ids(browser) == ["bounced-1", "bounced-2", "bounced-3", "bounced-4"]
    assert browser.find_element("id", "shown").text == "4 of 63 shown"
    row = browser.find_element("css selector", '#people tr[data-state="bounced"]')
    assert '550 5.1.1 user unknown <"x">' in row.text
    browser.find_element("css selector", 'button[data-filter=""]').click()
    assert len(visible_ids(browser)) == 63


def test_a_column_sorts_when_its_header_is_clicked(campaign: Path, browser) -> None:
    """The State header sorts the rows by state, then the other way round."""
    browser.get(page_of(campaign).as_uri())
    header = browser.find_element("css selector", 'th[data-sort="2"]')
    header.click()
    states = [
        td.text for td in browser.find_elements("css selector", "#people tbody td:nth-child(3)")
    ]
    assert states == sorted(states)
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    states = [
        td.text for td in browser.find_elements("css selector", "#people tbody td:nth-child(3)")
    ]
    assert states == sorted(states, reverse=True)


def test_a_hostile_reply_and_name_show_as_text_and_run_nothing(campaign: Path, browser) -> None:
    """A reply and a name with <script>, </table> and quotes are shown as typed; no script runs."""
    page = page_of(campaign)
    html = page.read_text(encoding="utf-8")
    assert "<script>window.pwned" not in html
    assert "&lt;/table&gt;&lt;script&gt;" in html
    browser.get(page.as_uri())
    assert browser.execute_script("return window.pwned === undefined")
    row = browser.find_element("css selector", '#people tr[data-state="replied"]')
    assert row.find_element("css selector", "td b").text == HOSTILE
    assert HOSTILE in row.find_element("css selector", "td:nth-child(6)").text
    # The table is whole: the excerpt's </table> closed nothing.
    assert len(browser.find_elements("css selector", "#people tbody tr")) == 63


def test_the_page_references_no_address_on_the_network(campaign: Path) -> None:
    """No http(s) URL anywhere in the page, and its policy forbids any request."""
    html = page_of(campaign).read_text(encoding="utf-8")
    assert not re.search(r"https?:", html)
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', html)
    assert policy is not None
    assert unescape(policy[1]).startswith("default-src 'none';")


def test_a_password_in_the_server_url_is_hidden(tmp_path: Path) -> None:
    """A run recorded with a password in its URL is named with the password hidden."""
    campaign_file = write_campaign(tmp_path / "spring")
    write_log(
        campaign_file.parent / "logs" / "spring.sqlite3",
        transport="smtp://me:s3cret-pw@relay.example:587",
    )
    html = page_of(campaign_file).read_text(encoding="utf-8")
    assert "s3cret-pw" not in html
    assert "smtp://me:***@relay.example:587" in html


def test_screenshot_and_pdf_print_with_the_header_on_each_page(
    campaign: Path, browser, tmp_path: Path
) -> None:
    """A screenshot is a PNG; the A4 print is a PDF whose second page repeats the table's header."""
    pdftotext = need_program("pdftotext", package="poppler-utils")
    browser.get(page_of(campaign).as_uri())
    png = tmp_path / "report.png"
    assert browser.save_screenshot(str(png))
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    printed = browser.execute_cdp_cmd(
        "Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69, "preferCSSPageSize": True}
    )
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(base64.b64decode(printed["data"]))
    assert pdf.read_bytes().startswith(b"%PDF-")
    pages = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout.split("\f")
    with_rows = [p for p in pages if "Ambassador" in p]
    assert len(with_rows) >= 2
    for text in with_rows[1:]:
        assert re.search(r"Contact\s+Address\s+State\s+Delivery", text), text
    # The filters are not printed.
    assert "Show:" not in "".join(pages)


def test_without_scripts_the_table_is_whole(campaign: Path) -> None:
    """With JavaScript off the page shows every row, in list order, and no filter buttons."""
    options = webdriver.ChromeOptions()
    options.binary_location = need_program("chromium", package="chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"profile.managed_default_content_settings.javascript": 2}
    )
    service = Service(executable_path=need_program("chromedriver", package="chromium-driver"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(page_of(campaign).as_uri())
        assert visible_ids(driver) == [c.id for c in contacts()]
        assert not driver.find_element("id", "controls").is_displayed()
        assert counts_on(driver)["bounced"] == 4
    finally:
        driver.quit()


def test_on_a_phone_nothing_needs_scrolling_sideways(campaign: Path, browser) -> None:
    """At a phone's width each row is a card with its labels, and the page is no wider."""
    browser.set_window_size(390, 844)
    try:
        browser.get(page_of(campaign).as_uri())
        width = browser.execute_script("return document.documentElement.clientWidth")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        assert not browser.find_element("css selector", "#people thead").is_displayed()
        cell = browser.find_element(
            "css selector", '#people tr[data-state="bounced"] td:nth-child(3)'
        )
        assert cell.text == "bounced"
        label = browser.execute_script(
            "return getComputedStyle(arguments[0], '::before').content", cell
        )
        assert label == '"State"'
    finally:
        browser.set_window_size(1280, 900)


def test_cli_writes_the_default_file_and_prints_its_path(campaign: Path) -> None:
    """'outreach report' writes reports/<campaign>.html, for its owner only, and prints the path."""
    result = run_cli("report", cwd=campaign.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "reports/spring.html\n"
    page = campaign.parent / "reports" / "spring.html"
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert page.stat().st_mode & 0o777 == 0o600
    result = run_cli("report", "--out", "elsewhere/page.html", cwd=campaign.parent)
    assert result.returncode == 0, result.stderr
    assert (campaign.parent / "elsewhere" / "page.html").exists()


def test_cli_without_a_log_says_so(tmp_path: Path) -> None:
    """With no send log yet, 'outreach report' fails, naming the log and the command that makes it."""
    campaign_file = write_campaign(tmp_path / "spring")
    result = run_cli("report", cwd=campaign_file.parent)
    assert result.returncode == 1
    assert "no send log here yet; it is made by the first 'outreach send'" in result.stderr
    assert not (campaign_file.parent / "reports").exists()


def test_a_trial_log_is_reported_as_a_trial(tmp_path: Path) -> None:
    """The log of trial runs goes to reports/<campaign>-trial.html, which says it is a trial."""
    campaign_file = write_campaign(tmp_path / "spring")
    write_log(
        campaign_file.parent / "logs" / "spring-trial.sqlite3",
        transport=f"maildir:{tmp_path / 'outbox'}",
        live=False,
    )
    path = page_of(campaign_file)
    assert path == campaign_file.parent / "reports" / "spring-trial.html"
    assert "none left this machine" in path.read_text(encoding="utf-8")


def test_open_hands_the_written_page_to_the_browser(campaign: Path) -> None:
    """'report --open' writes the page, then opens its file URL in the browser $BROWSER names."""
    opener = f"{sys.executable} -c \"import sys; open('opened.txt', 'w').write(sys.argv[1])\" %s"
    result = run_cli("report", "--open", cwd=campaign.parent, env={"BROWSER": opener})
    assert result.returncode == 0, result.stderr
    page = (campaign.parent / "reports" / "spring.html").resolve()
    assert (campaign.parent / "opened.txt").read_text(encoding="utf-8") == page.as_uri()


NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
AGO = NOW - dt.timedelta(days=10)


def write_follow_up_campaign(folder: Path) -> Path:
    """Write a campaign of eight contacts with two follow-up stages, two and five days on."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "letter.md.j2").write_text("Dear {{ name }},\n\nA letter.\n", encoding="utf-8")
    lines = ["contacts:"]
    for name in "abcdefgh":
        lines += [
            f"  - id: {name}",
            f"    email: {name}@mission.example",
            f"    name: {name.upper()}",
        ]
    (folder / "contacts.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "campaign.toml").write_text(
        textwrap.dedent(
            """\
            name = "autumn"
            subject = "A letter"
            template = "letter.md.j2"
            contacts = "contacts.yaml"
            from = "Office <office@ngo.example>"

            [[follow_up]]
            name = "reminder"
            template = "letter.md.j2"
            after = "2d"

            [[follow_up]]
            name = "last-call"
            template = "letter.md.j2"
            after = "5d"
            """
        ),
        encoding="utf-8",
    )
    return folder / "campaign.toml"


def hand_over(
    log: SendLog, contact_id: str, *, stage: str = "first", status: Status = Status.SENT
) -> None:
    """Claim one letter and settle it in ``status`` (left claimed for ``sending``)."""
    log.claim(
        contact_id, message_id=f"<{stage}-{contact_id}@ngo.example>", content_hash="ab", stage=stage
    )
    if status == Status.SENDING:
        return
    outcome, code = {
        Status.SENT: ("sent", 250),
        Status.FAILED: ("permanent", 550),
        Status.UNCERTAIN: ("uncertain", None),
    }[status]
    log.settle(contact_id, status=status, outcome=outcome, code=code, text="said", stage=stage)


def write_follow_up_log(path: Path) -> None:
    """Write five runs, two of which sent nothing: every state a follow-up can be owed in.

    a: reminder sent, last-call due; b: reminder due; c: first letter an hour ago, reminder
    later; d: reminder failed; e: reminder uncertain; f: stopped; g: pending; h: reminder in
    flight.
    """
    clock = Clock(AGO)
    with SendLog(path, campaign="autumn", write=True, clock=clock) as log:
        log.register([Contact(id=n, email=f"{n}@mission.example") for n in "abcdefgh"])
        log.start_run("smtp://relay.example:587")
        for contact_id in "abdefh":
            hand_over(log, contact_id)
        log.end_run("complete")
        clock.now = AGO + dt.timedelta(days=1)
        log.start_run("smtp://relay.example:587")  # nothing due: sends nothing
        log.end_run("complete")
        clock.now = AGO + dt.timedelta(days=2, hours=1)
        log.start_run("smtp://relay.example:587")
        hand_over(log, "a", stage="reminder")
        hand_over(log, "d", stage="reminder", status=Status.FAILED)
        hand_over(log, "e", stage="reminder", status=Status.UNCERTAIN)
        hand_over(log, "h", stage="reminder", status=Status.SENDING)
        log.end_run("complete")
        clock.now = AGO + dt.timedelta(days=3)
        log.start_run("smtp://relay.example:587")  # a refusal for now only: sends nothing
        log.claim("g", message_id="<first-g@ngo.example>", content_hash="ab")
        log.settle("g", status=Status.PENDING, outcome="transient", code=451, text="later")
        log.end_run("complete")
        clock.now = NOW - dt.timedelta(hours=1)
        log.start_run("smtp://relay.example:587")
        hand_over(log, "c")
        log.end_run("complete")
        log.stop(["f"], reason="answered by phone")


@pytest.fixture
def follow_up_campaign(tmp_path: Path) -> Path:
    """Write the campaign with two follow-up stages and its log; return the campaign file."""
    path = write_follow_up_campaign(tmp_path / "autumn")
    write_follow_up_log(path.parent / "logs" / "autumn.sqlite3")
    return path


def test_follow_ups_owed_are_listed_by_stage_with_their_commands(
    follow_up_campaign: Path, browser
) -> None:
    """Follow-ups due, later, in flight, failed or uncertain are owed by stage, each with its command."""
    browser.get(page_of(follow_up_campaign).as_uri())
    owed = {
        (li.get_attribute("data-stage"), li.get_attribute("data-owed")): li.text.splitlines()
        for li in browser.find_elements("css selector", "#owed li")
    }
    later = (NOW - dt.timedelta(hours=1) + dt.timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    assert owed == {
        ("first", "pending"): ["1 pending: not sent yet.", "outreach send", "g"],
        ("reminder", "due"): [
            "reminder: 1 due: due now: the next send sends them.",
            "outreach send",
            "b",
        ],
        ("reminder", "later"): [
            f"reminder: 1 later: not due yet, the first at {later}: 'outreach plan' says when each is.",
            "outreach plan",
            "c",
        ],
        ("reminder", "sending"): [
            "reminder: 1 sending: in flight when a run stopped: the next run calls them uncertain.",
            "outreach send",
            "h",
        ],
        ("reminder", "failed"): [
            "reminder: 1 failed: refused by the server: no later letter goes until it is sent.",
            "outreach send --retry-failed",
            "d",
        ],
        ("reminder", "uncertain"): [
            (
                "reminder: 1 uncertain: may have arrived: ask the server's operator before "
                "sending them again; no later letter goes until it is settled."
            ),
            "outreach send --resend-uncertain",
            "e",
        ],
        ("last-call", "due"): [
            "last-call: 1 due: due now: the next send sends them.",
            "outreach send",
            "a",
        ],
    }


def test_letters_counts_the_runs_that_handed_over_and_names_the_follow_ups(
    follow_up_campaign: Path, browser
) -> None:
    """Seven first letters and one reminder went in three of five runs: the Letters row says so."""
    browser.get(page_of(follow_up_campaign).as_uri())
    assert browser.find_element("id", "letters").text == (
        "8 recipients; 7 first letters and 1 follow-up (reminder: 1) sent, "
        "by 3 runs that handed over at least one letter (5 runs in all)"
    )


def test_follow_ups_owed_on_the_page_are_those_of_log_json(
    follow_up_campaign: Path, browser
) -> None:
    """Each follow-up group's count equals the letters and next_due of 'log --json', counted."""
    browser.get(page_of(follow_up_campaign).as_uri())
    shown = counts_on(browser)
    groups = {
        (li.get_attribute("data-stage"), li.get_attribute("data-owed")): int(
            li.find_element("tag name", "b").text.split(": ")[-1].split()[0]
            if li.get_attribute("data-stage") != "first"
            else li.find_element("tag name", "b").text.split()[0]
        )
        for li in browser.find_elements("css selector", "#owed li")
    }
    result = run_cli("log", "--json", cwd=follow_up_campaign.parent)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    states = Counter(record["state"] for record in records)
    assert shown == {word: states[word] for word in shown if word != "sent"} | {
        "sent": sum(states[word] for word in logview.NEWS)
    }
    expected: Counter[tuple[str, str]] = Counter()
    for record in records:
        for letter in record["letters"]:
            if letter["stage"] != "first" and letter["status"] in {
                "sending",
                "failed",
                "uncertain",
            }:
                expected[letter["stage"], letter["status"]] += 1
        due = record["next_due"]
        if due["at"] is not None and due["stage"] != "first":
            when = "due" if dt.datetime.fromisoformat(due["at"]) <= NOW else "later"
            expected[due["stage"], when] += 1
        if record["state"] in {"pending", "sending", "failed", "uncertain", "bounced"}:
            expected["first", record["state"]] += 1
    assert groups == dict(expected)
    assert sum(n for (stage, _), n in groups.items() if stage != "first") == 6
    stages = browser.find_element("id", "stages").text
    sent = Counter(
        letter["stage"]
        for record in records
        for letter in record["letters"]
        if letter["status"] == "sent"
    )
    assert stages == (
        f"3: the first letter; reminder, {sent['reminder']} sent; last-call, 0 sent; "
        "follow-ups stopped for 1"
    )


def test_follow_ups_owed_that_cannot_be_said_are_named_as_such(follow_up_campaign: Path) -> None:
    """Without the contact list the schedule cannot say what is due: the page notes why."""
    (follow_up_campaign.parent / "contacts.yaml").unlink()
    html = page_of(follow_up_campaign).read_text(encoding="utf-8")
    note = re.search(r'<p class="note" id="owed-note">(.*?)</p>', html, re.DOTALL)
    assert note is not None
    assert note[1].startswith("Note: the follow-ups owed cannot be said (")
    assert "contacts.yaml" in note[1]
    assert 'data-owed="due"' not in html
    assert 'data-owed="failed" data-stage="reminder"' in html
