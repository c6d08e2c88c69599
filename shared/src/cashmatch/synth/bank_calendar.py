"""Calendar: days are ints (days since 1970-01-01); the months of the horizon and Polish
banking days (no bookings on weekends and public holidays).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import re

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def epoch_day(y: int, m: int, d: int) -> int:
    return dt.date(y, m, d).toordinal() - _EPOCH_ORDINAL


def date(day: int) -> dt.date:
    return dt.date.fromordinal(day + _EPOCH_ORDINAL)


def parse_month(text: str, what: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"{what} must be YYYY-MM, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _polish_holidays(year: int) -> set[int]:
    fixed = [(1, 1), (1, 6), (5, 1), (5, 3), (8, 15), (11, 1), (11, 11), (12, 25), (12, 26)]
    if year >= 2025:  # Christmas Eve became a public holiday in 2025
        fixed.append((12, 24))
    days = {epoch_day(year, m, d) for m, d in fixed}
    easter = _easter(year).toordinal() - _EPOCH_ORDINAL
    return days | {easter + 1, easter + 60}  # Easter Monday, Corpus Christi


class Calendar:
    """Months of the horizon and Polish banking days (no bookings on weekends and holidays)."""

    def __init__(self, start: str, months: int) -> None:
        y, m = parse_month(start, "start")
        self.ym: list[tuple[int, int]] = []
        self.month_starts: list[int] = []
        for k in range(months + 1):
            yy, mm = y + (m - 1 + k) // 12, (m - 1 + k) % 12 + 1
            self.ym.append((yy, mm))
            self.month_starts.append(epoch_day(yy, mm, 1))
        self.months = months
        self.start, self.end = self.month_starts[0], self.month_starts[-1]
        holidays: set[int] = set()
        for year in range(y, self.ym[-1][0] + 2):
            holidays |= _polish_holidays(year)
        span = self.end - self.start + 400
        is_bday = [
            (self.start + k + 3) % 7 < 5 and self.start + k not in holidays for k in range(span)
        ]
        self._next = [0] * span
        following = self.start + span
        for k in range(span - 1, -1, -1):
            if is_bday[k]:
                following = self.start + k
            self._next[k] = following
        self.bdays = [
            [day for day in range(a, b) if is_bday[day - self.start]]
            for a, b in itertools.pairwise(self.month_starts)
        ]

    def next_bday(self, day: int) -> int:
        k = max(day - self.start, 0)
        return self._next[k] if k < len(self._next) else day

    def month_of(self, day: int) -> int:
        return bisect.bisect_right(self.month_starts, day) - 1

    def day_in_month(self, month: int, day_of_month: int) -> int:
        length = self.month_starts[month + 1] - self.month_starts[month]
        return self.month_starts[month] + min(day_of_month, length) - 1
