"""Read when the writer of an out-of-office reply says they are back, where that is certain.

Only forms that cannot be read two ways count: a day and a month's name ("back on 2 July
2010", "returning Monday, July 5", "back on 2nd July"), or an ISO date ("back on
2010-07-02"). A date in figures such as 07/02/2010 is 7 February in Europe and 2 July in the
United States: never read. A date without its year is the first such day on or after the
reply; a weekday that does not fit the date makes it unread. "Until 2 July" means away that
day too: back the day after. Of several dates, the latest counts, so a follow-up never goes
before the writer said they are back. Relies on nothing else in ``outreach.reports``.
"""

from __future__ import annotations

import datetime as dt
import re

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sept", "sep"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_WEEKDAYS = {
    name: number
    for number, names in enumerate(
        [
            ("monday", "mon"),
            ("tuesday", "tue", "tues"),
            ("wednesday", "wed"),
            ("thursday", "thu", "thurs"),
            ("friday", "fri"),
            ("saturday", "sat"),
            ("sunday", "sun"),
        ]
    )
    for name in names
}
_MONTH = "(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b\.?"
_MONTH2 = "(?P<month2>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b\.?"
_WEEKDAY = "(?:(?P<weekday>" + "|".join(sorted(_WEEKDAYS, key=len, reverse=True)) + r")\b\.?,?\s+)?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_DAY2 = r"(?P<day2>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<year>\d{4}))?"
_YEAR2 = r"(?:,?\s+(?P<year2>\d{4}))?"
_DATE = (
    rf"{_WEEKDAY}(?:(?P<iso>\d{{4}}-\d{{2}}-\d{{2}})"  # 2010-07-02
    rf"|{_DAY}\s+(?:of\s+)?{_MONTH}{_YEAR}"  # 2 July 2010, 2nd of July
    rf"|{_MONTH2}\s+{_DAY2}{_YEAR2})"  # July 2, 2010
    r"(?![\d/.-]*\d)"  # not the start of something longer: 2 July 2010/11
)
_BACK = re.compile(
    r"\b(?P<cue>(?:be\s+|am\s+|will\s+be\s+)?(?:back|return(?:ing|s)?|in\s+the\s+office"
    r"|available)(?:\s+again)?(?:\s+(?:to\s+the\s+office|to\s+work|in\s+the\s+office))?"
    r"(?:\s+(?:on|from))?|until|till|through)\s+" + _DATE,
    re.IGNORECASE,
)
_FURTHEST = dt.timedelta(days=366)  # a return announced further ahead is not taken as one


def _found_date(found: re.Match[str], sent: dt.date | None) -> dt.date | None:
    """Return the date one match names, or None if it is not certain."""
    if found.group("iso"):
        year, number, day = (int(part) for part in found.group("iso").split("-"))
        years = [year]
    else:
        first = found.group("day") is not None
        day = int(found.group("day" if first else "day2"))
        number = _MONTHS[found.group("month" if first else "month2").casefold()]
        written = found.group("year" if first else "year2")
        # No year: the first such day on or after the reply; none without the reply's date.
        years = [int(written)] if written else [sent.year, sent.year + 1] if sent else []
    for year in years:
        try:
            date = dt.date(year, number, day)
        except ValueError:
            continue
        if sent is None or date >= sent or len(years) == 1:
            return date
    return None


def return_date(text: str, /, *, sent: dt.date | None) -> dt.date | None:
    """Return the day an out-of-office's writer says they are back, or None if not certain.

    ``sent`` is the reply's own date: a year-less date is the first on or after it, and a
    return before it, or more than a year after it, is not one.
    """
    dates: list[dt.date] = []
    for found in _BACK.finditer(text):
        date = _found_date(found, sent)
        if date is None:
            continue
        weekday = found.group("weekday")
        if weekday is not None and _WEEKDAYS[weekday.casefold()] != date.weekday():
            continue  # "Monday 2 July 2010" was a Friday: one of the two is wrong
        if found.group("cue").casefold() in {"until", "till", "through"}:
            date += dt.timedelta(days=1)
        if sent is not None and not (sent <= date <= sent + _FURTHEST):
            continue
        dates.append(date)
    return max(dates, default=None)
