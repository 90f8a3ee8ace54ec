"""China's public holidays and make-up working days (调休), as data.

The State Council publishes each year's arrangement in November of the year before
(国务院办公厅关于2026年部分节假日安排的通知, 2025-11-04). The tickets plugin stores the days in
its table ``tickets_calendar_day``; 2026 is entered by the plugin's seed migration, later years
by an administrator (``POST /api/tickets/calendar`` or the administration page).
"""

from __future__ import annotations

from datetime import date, timedelta

HOLIDAY, WORKDAY = "holiday", "workday"


def _span(first: date, last: date, name: str) -> list[tuple[date, str, str]]:
    return [(first + timedelta(days=n), HOLIDAY, name) for n in range((last - first).days + 1)]


#: ``(day, kind, name)``: a holiday is a day off, a workday a weekend day worked.
CHINA_2026: list[tuple[date, str, str]] = [
    *_span(date(2026, 1, 1), date(2026, 1, 3), "元旦"),
    (date(2026, 1, 4), WORKDAY, "元旦调休上班"),
    (date(2026, 2, 14), WORKDAY, "春节调休上班"),
    *_span(date(2026, 2, 15), date(2026, 2, 23), "春节"),
    (date(2026, 2, 28), WORKDAY, "春节调休上班"),
    *_span(date(2026, 4, 4), date(2026, 4, 6), "清明节"),
    *_span(date(2026, 5, 1), date(2026, 5, 5), "劳动节"),
    (date(2026, 5, 9), WORKDAY, "劳动节调休上班"),
    *_span(date(2026, 6, 19), date(2026, 6, 21), "端午节"),
    (date(2026, 9, 20), WORKDAY, "国庆节调休上班"),
    *_span(date(2026, 9, 25), date(2026, 9, 27), "中秋节"),
    *_span(date(2026, 10, 1), date(2026, 10, 7), "国庆节"),
    (date(2026, 10, 10), WORKDAY, "国庆节调休上班"),
]
