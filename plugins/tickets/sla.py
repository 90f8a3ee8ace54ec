"""Service-level arithmetic in business hours: pure functions, no database and no clock.

A :class:`BusinessCalendar` says when the service desk works: working hours on working days
in one time zone. Working days are the chosen weekdays, minus public holidays, plus make-up
working days (调休: a Saturday or Sunday worked in exchange for a longer holiday). Every
function takes the moments it needs as arguments (aware datetimes), so tests inject the clock.

A ticket's SLA *clock* runs in business time from the ticket's creation; it is paused while
the ticket waits for the customer (and while it is resolved, so that a reopened ticket
continues where it stopped). Pauses are ``(start, end)`` intervals, ``end`` ``None`` while
the pause lasts. The *due* moment is the earliest moment at which the business time counted,
pauses left out, reaches the target; the clock is *breached* from that moment on.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

ZERO = timedelta(0)
#: How many days ahead :meth:`BusinessCalendar.add` looks for working time before giving up.
MAX_DAYS = 3660
LONG_SPAN_DAYS = 14  # from here on, business_time counts whole days instead of walking them
DUE_MEMORY = 20_000  # due moments a calendar remembers (see BusinessCalendar.due) before starting again

Pause = tuple[datetime, datetime | None]


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("SLA arithmetic needs aware datetimes")
    return moment


@dataclass(frozen=True)
class BusinessCalendar:
    """When the service desk works. ``weekdays`` counts Monday as 0."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    opens: time = time(9, 0)
    closes: time = time(18, 0)
    weekdays: frozenset[int] = frozenset(range(5))
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()  # make-up working days (调休)
    # Each day's window, once worked out: a queue page walks the same days for every ticket.
    _windows: dict[date, tuple[datetime, datetime] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False)
    # Sorted, for counting the exceptions within a span by bisection (see working_days).
    _days_off: tuple[date, ...] = field(default=(), init=False, repr=False, compare=False, hash=False)
    _extra_days: tuple[date, ...] = field(default=(), init=False, repr=False, compare=False, hash=False)
    # The due moments of clocks without pauses, by (start, target): a queue shows the same
    # tickets again and again, and adding working time walks the days one by one.
    _due: dict[tuple[datetime, timedelta], datetime] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.closes <= self.opens:
            raise ValueError("working hours must close after they open")
        object.__setattr__(self, "_days_off", tuple(sorted(
            day for day in self.holidays if day.weekday() in self.weekdays and day not in self.workdays)))
        object.__setattr__(self, "_extra_days", tuple(sorted(
            day for day in self.workdays if day.weekday() not in self.weekdays)))

    # -- days ----------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() in self.weekdays

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The working hours of ``day`` (a local date) as aware UTC datetimes, or ``None``."""
        if day not in self._windows:
            self._windows[day] = (
                (datetime.combine(day, self.opens, tzinfo=self.timezone).astimezone(UTC),
                 datetime.combine(day, self.closes, tzinfo=self.timezone).astimezone(UTC))
                if self.is_working_day(day) else None)
        return self._windows[day]

    def local_day(self, moment: datetime) -> date:
        return _aware(moment).astimezone(self.timezone).date()

    def windows(self, start: datetime, end: datetime | None = None) -> Iterator[tuple[datetime, datetime]]:
        """The working windows that end after ``start`` (and begin before ``end``), in order."""
        day = self.local_day(start)
        for _ in range(MAX_DAYS):
            found = self.window(day)
            if found is not None:
                if end is not None and found[0] >= end:
                    return
                if found[1] > start:
                    yield found
            elif end is not None and datetime.combine(day, time(0), tzinfo=self.timezone) >= end:
                return
            day += timedelta(days=1)

    # -- durations -----------------------------------------------------------------------

    def business_time(self, start: datetime, end: datetime) -> timedelta:
        """The working time between two moments (zero when ``end`` is not after ``start``).

        Spans of weeks (an old open ticket's clock) are counted by whole days, not walked day
        by day: the first and last day's windows, plus a full working day for every working
        day between them.
        """
        _aware(start), _aware(end)
        if end <= start:
            return ZERO
        first, last = self.local_day(start), self.local_day(end)
        if (last - first).days < LONG_SPAN_DAYS:
            return self.walked_business_time(start, end)
        total = self._part_of_day(first, start, end) + self._part_of_day(last, start, end)
        return total + self.working_days(first + timedelta(days=1), last - timedelta(days=1)) * self._day_length()

    def walked_business_time(self, start: datetime, end: datetime) -> timedelta:
        """:meth:`business_time`, walking each working window in turn."""
        total = ZERO
        for opens, closes in self.windows(start, end):
            total += min(closes, end) - max(opens, start)
        return total

    def working_days(self, first: date, last: date) -> int:
        """How many working days there are from ``first`` to ``last``, both included."""
        days = (last - first).days + 1
        if days <= 0:
            return 0
        weeks, rest = divmod(days, 7)
        count = weeks * len(self.weekdays) + sum((first.weekday() + i) % 7 in self.weekdays for i in range(rest))
        count -= bisect_right(self._days_off, last) - bisect_left(self._days_off, first)
        count += bisect_right(self._extra_days, last) - bisect_left(self._extra_days, first)
        return count

    def _part_of_day(self, day: date, start: datetime, end: datetime) -> timedelta:
        window = self.window(day)
        if window is None:
            return ZERO
        return max(ZERO, min(window[1], end) - max(window[0], start))

    def _day_length(self) -> timedelta:
        # In local time; a daylight-saving change inside working hours would be off by its hour.
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def due(self, start: datetime, duration: timedelta) -> datetime:
        """:meth:`add`, remembered: the due moment of a clock that was never paused."""
        key = (start, duration)
        found = self._due.get(key)
        if found is None:
            if len(self._due) >= DUE_MEMORY:
                self._due.clear()
            found = self._due[key] = self.add(start, duration)
        return found

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest moment at which ``duration`` of working time has passed since ``start``."""
        _aware(start)
        if duration < ZERO:
            raise ValueError("cannot add a negative duration")
        if duration == ZERO:
            return start
        remaining = duration
        for opens, closes in self.windows(start):
            begin = max(opens, start)
            available = closes - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise ValueError(f"no working time within {MAX_DAYS} days: the calendar has no working days")


def merge_pauses(pauses: Iterable[Pause]) -> list[Pause]:
    """Pauses sorted by start, overlapping or touching ones merged; an open pause ends all."""
    merged: list[Pause] = []
    for start, end in sorted(pauses, key=lambda pause: _aware(pause[0])):
        if end is not None and end <= start:
            continue
        if merged:
            last_start, last_end = merged[-1]
            if last_end is None:
                break
            if start <= last_end:
                merged[-1] = (last_start, None if end is None else max(last_end, end))
                continue
        merged.append((start, end))
    return merged


def elapsed(calendar: BusinessCalendar, start: datetime, until: datetime, pauses: Sequence[Pause] = ()) -> timedelta:
    """Working time between ``start`` and ``until``, the pauses left out."""
    total = calendar.business_time(start, until)
    for pause_start, pause_end in merge_pauses(pauses):
        begin, end = max(pause_start, start), min(pause_end or until, until)
        if end > begin:
            total -= calendar.business_time(begin, end)
    return total


def due_at(calendar: BusinessCalendar, start: datetime, target: timedelta,
           pauses: Sequence[Pause] = ()) -> datetime | None:
    """The earliest moment the clock reaches ``target``; ``None`` while a pause that began
    before that moment lasts (the clock is stopped, so nobody knows when it will be due)."""
    if not pauses:
        return calendar.due(start, target)
    remaining = target
    cursor = start
    for pause_start, pause_end in merge_pauses(pauses):
        if pause_end is not None and pause_end <= cursor:
            continue
        if pause_start > cursor:
            candidate = calendar.add(cursor, remaining)
            if candidate <= pause_start:
                return candidate
            remaining -= calendar.business_time(cursor, pause_start)
        if pause_end is None:
            return None
        cursor = max(cursor, pause_end)
    return calendar.add(cursor, remaining)


@dataclass(frozen=True)
class Clock:
    """One SLA clock (first response or resolution) at a given moment."""

    target: timedelta
    due_at: datetime | None  # None: paused before it was reached
    paused: bool  # a pause lasts now
    stopped: bool  # the goal was met (responded, resolved): the clock no longer runs
    until: datetime  # the moment it is read at: now, or when it stopped if that was earlier
    # Works out ``elapsed`` when asked: a queue shows states and due times only, and counting
    # the working time was two thirds of the arithmetic of a page of clocks.
    _count_elapsed: Callable[[], timedelta] = field(repr=False, compare=False)

    @cached_property
    def elapsed(self) -> timedelta:
        """Working time counted so far, pauses left out."""
        return self._count_elapsed()

    @property
    def remaining(self) -> timedelta:
        return self.target - self.elapsed

    @property
    def breached(self) -> bool:
        """Whether the counted time reached the target: the moment it is read at is on or
        after the due moment (the counted time only grows, and reaches the target there)."""
        return self.target <= ZERO or (self.due_at is not None and self.until >= self.due_at)

    @property
    def state(self) -> str:
        """``met``, ``breached``, ``paused`` or ``running``."""
        if self.stopped:
            return "breached" if self.breached else "met"
        if self.breached:
            return "breached"
        return "paused" if self.paused else "running"


def clock(calendar: BusinessCalendar, start: datetime, target: timedelta, now: datetime,
          pauses: Sequence[Pause] = (), stopped_at: datetime | None = None) -> Clock:
    """The clock that started at ``start`` with ``target``, as it is at ``now``.

    ``stopped_at`` is when its goal was met (the first response, the resolution), if it was.
    """
    until = min(stopped_at, now) if stopped_at is not None else now
    paused = stopped_at is None and bool(pauses) and any(p_start <= now and (p_end is None or now < p_end)
                                                         for p_start, p_end in pauses)
    return Clock(target=target, due_at=due_at(calendar, start, target, pauses), paused=paused,
                 stopped=stopped_at is not None and stopped_at <= now, until=until,
                 _count_elapsed=lambda: elapsed(calendar, start, until, pauses))


def parse_hours(text: str) -> tuple[time, time]:
    """``"09:00-18:00"`` → ``(time(9), time(18))``."""
    try:
        opens, closes = (time.fromisoformat(part.strip()) for part in text.replace("–", "-").split("-", 1))
    except ValueError:
        raise ValueError(f"working hours {text!r} are not like 09:00-18:00") from None
    if closes <= opens:
        raise ValueError(f"working hours {text!r} close before they open")
    return opens, closes


def parse_weekdays(text: str) -> frozenset[int]:
    """``"1-5"`` (ISO: Monday is 1) or ``"1,2,3,4,5,6"`` → Python weekdays (Monday is 0)."""
    days: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if not 1 <= first <= last <= 7:
            raise ValueError(f"weekdays {text!r}: use 1 (Monday) to 7 (Sunday)")
        days.update(range(first - 1, last))
    return frozenset(days)
