"""The SLA arithmetic of the tickets plugin (a pure module): business hours in Asia/Shanghai,
weekends, China's 2026 holidays and make-up working days (调休), and pauses, with the clock
injected. Examples first, then properties checked with hypothesis."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kehu_plugins.tickets import sla
from kehu_plugins.tickets.holidays import CHINA_2026, HOLIDAY, WORKDAY

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = sla.BusinessCalendar(
    timezone=SHANGHAI, opens=time(9), closes=time(18),
    holidays=frozenset(d for d, kind, _ in CHINA_2026 if kind == HOLIDAY),
    workdays=frozenset(d for d, kind, _ in CHINA_2026 if kind == WORKDAY),
)
H = timedelta(hours=1)


def at(text: str) -> datetime:
    """Beijing time → aware UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).astimezone(UTC)


def local(moment: datetime | None) -> str:
    assert moment is not None
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


# --- The calendar ----------------------------------------------------------------------------------


def test_2026_data_has_the_published_holidays_and_make_up_days() -> None:
    holidays = {d for d, kind, _ in CHINA_2026 if kind == HOLIDAY}
    workdays = {d for d, kind, _ in CHINA_2026 if kind == WORKDAY}
    assert len(holidays) == 3 + 9 + 3 + 5 + 3 + 3 + 7
    assert workdays == {date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9),
                        date(2026, 9, 20), date(2026, 10, 10)}
    assert all(day.weekday() >= 5 for day in workdays)  # make-up days are weekend days
    assert not holidays & workdays


@pytest.mark.parametrize(("day", "working"), [
    ("2026-01-01", False),  # 元旦, a Thursday
    ("2026-01-04", True),   # a Sunday worked for 元旦
    ("2026-01-05", True),   # an ordinary Monday
    ("2026-01-10", False),  # an ordinary Saturday
    ("2026-02-14", True),   # a Saturday worked for 春节
    ("2026-02-16", False),  # 春节, a Monday
    ("2026-02-24", True),   # the first working day after 春节
    ("2026-09-20", True),   # a Sunday worked for 国庆节
    ("2026-10-08", True),   # Thursday after 国庆节
    ("2026-10-10", True),   # a Saturday worked for 国庆节
])
def test_working_days(day: str, working: bool) -> None:
    assert CALENDAR.is_working_day(date.fromisoformat(day)) is working


@pytest.mark.parametrize(("start", "hours", "due"), [
    ("2026-03-02 10:00", 2, "2026-03-02 12:00"),   # within one day
    ("2026-03-02 17:00", 2, "2026-03-03 10:00"),   # over the evening
    ("2026-03-06 17:00", 2, "2026-03-09 10:00"),   # Friday to Monday over the weekend
    ("2026-03-07 11:00", 1, "2026-03-09 10:00"),   # opened on a Saturday
    ("2026-03-02 07:30", 1, "2026-03-02 10:00"),   # opened before opening time
    ("2026-03-02 20:00", 9, "2026-03-03 18:00"),   # a full business day ends at closing time
    ("2026-02-13 17:00", 2, "2026-02-14 10:00"),   # Friday into the make-up Saturday
    ("2026-02-14 17:30", 1, "2026-02-24 09:30"),   # over the nine days of 春节
    ("2026-09-30 17:00", 3, "2026-10-08 11:00"),   # over 国庆节
    ("2026-09-18 17:00", 2, "2026-09-20 10:00"),   # Friday to the make-up Sunday, over Saturday
    ("2026-12-31 17:00", 2, "2027-01-01 10:00"),   # 2027 has no data yet: an ordinary Friday
])
def test_add_business_time(start: str, hours: float, due: str) -> None:
    assert local(CALENDAR.add(at(start), hours * H)) == due


def test_business_time_between() -> None:
    assert CALENDAR.business_time(at("2026-03-06 17:00"), at("2026-03-09 10:00")) == 2 * H
    assert CALENDAR.business_time(at("2026-02-13 09:00"), at("2026-02-25 09:00")) == 9 * H * 3  # 13th, 14th, 24th
    assert CALENDAR.business_time(at("2026-10-01 09:00"), at("2026-10-07 18:00")) == timedelta(0)
    assert CALENDAR.business_time(at("2026-03-02 12:00"), at("2026-03-02 11:00")) == timedelta(0)


def test_other_hours_weekdays_and_time_zones() -> None:
    six_days = sla.BusinessCalendar(timezone=ZoneInfo("Asia/Shanghai"), opens=time(8, 30), closes=time(12),
                                    weekdays=sla.parse_weekdays("1-6"))
    assert local(six_days.add(at("2026-03-06 11:00"), 2 * H)) == "2026-03-07 09:30"  # Saturdays are worked
    assert sla.parse_weekdays("1,3,5") == frozenset({0, 2, 4})
    assert sla.parse_hours("09:00-18:00") == (time(9), time(18))
    for bad in ("18:00-09:00", "nine to six"):
        with pytest.raises(ValueError):
            sla.parse_hours(bad)
    with pytest.raises(ValueError):
        sla.parse_weekdays("0-5")
    with pytest.raises(ValueError):
        sla.BusinessCalendar(weekdays=frozenset()).add(at("2026-03-02 10:00"), H)
    with pytest.raises(ValueError):
        CALENDAR.add(datetime(2026, 3, 2, 10), H)  # naive datetimes are refused


# --- Pauses and clocks ----------------------------------------------------------------------------------


def test_a_pause_moves_the_due_moment_by_the_business_time_it_lasted() -> None:
    start = at("2026-03-02 10:00")  # Monday
    assert local(sla.due_at(CALENDAR, start, 4 * H)) == "2026-03-02 14:00"
    waiting = [(at("2026-03-02 11:00"), at("2026-03-04 14:00"))]  # Monday 11:00 to Wednesday 14:00
    assert local(sla.due_at(CALENDAR, start, 4 * H, waiting)) == "2026-03-04 17:00"
    assert sla.elapsed(CALENDAR, start, at("2026-03-04 15:00"), waiting) == 2 * H
    clock = sla.clock(CALENDAR, start, 4 * H, at("2026-03-04 15:00"), waiting)
    assert clock.state == "running" and clock.remaining == 2 * H


def test_while_paused_the_clock_stands_still_and_has_no_due_moment() -> None:
    start = at("2026-03-02 10:00")
    pauses = [(at("2026-03-02 11:00"), None)]
    for now in ("2026-03-02 12:00", "2026-03-20 12:00"):
        clock = sla.clock(CALENDAR, start, 4 * H, at(now), pauses)
        assert clock.state == "paused" and clock.elapsed == H and clock.due_at is None
        assert not clock.breached


def test_a_clock_breached_before_the_pause_stays_breached() -> None:
    start = at("2026-03-02 10:00")
    pauses = [(at("2026-03-02 15:00"), None)]
    clock = sla.clock(CALENDAR, start, 4 * H, at("2026-03-03 12:00"), pauses)
    assert clock.state == "breached" and local(clock.due_at) == "2026-03-02 14:00"


def test_overlapping_and_repeated_pauses_count_once() -> None:
    start = at("2026-03-02 09:00")
    pauses = [(at("2026-03-02 10:00"), at("2026-03-02 12:00")), (at("2026-03-02 11:00"), at("2026-03-02 13:00")),
              (at("2026-03-02 15:00"), at("2026-03-02 16:00"))]
    assert sla.merge_pauses(pauses) == [(at("2026-03-02 10:00"), at("2026-03-02 13:00")),
                                        (at("2026-03-02 15:00"), at("2026-03-02 16:00"))]
    assert sla.elapsed(CALENDAR, start, at("2026-03-02 18:00"), pauses) == 5 * H
    assert local(sla.due_at(CALENDAR, start, 5 * H, pauses)) == "2026-03-02 18:00"


def test_a_pause_over_a_holiday_takes_off_only_business_time() -> None:
    start = at("2026-09-29 09:00")  # Tuesday before 国庆节, target two business days
    pauses = [(at("2026-09-30 12:00"), at("2026-10-09 09:00"))]
    # 9 h on the 29th, 3 h on the 30th before the pause, then 6 h from Friday the 9th.
    assert local(sla.due_at(CALENDAR, start, 18 * H, pauses)) == "2026-10-09 15:00"


def test_met_and_breached_stopped_clocks() -> None:
    start = at("2026-03-02 10:00")
    met = sla.clock(CALENDAR, start, 4 * H, at("2026-03-10 10:00"), stopped_at=at("2026-03-02 13:00"))
    assert met.state == "met" and met.elapsed == 3 * H
    late = sla.clock(CALENDAR, start, 4 * H, at("2026-03-10 10:00"), stopped_at=at("2026-03-03 10:00"))
    assert late.state == "breached" and late.elapsed == 9 * H


# --- Properties --------------------------------------------------------------------------------------------

moments = st.datetimes(min_value=datetime(2025, 12, 20), max_value=datetime(2026, 12, 31),
                       timezones=st.just(SHANGHAI)).map(lambda m: m.astimezone(UTC))
durations = st.integers(min_value=1, max_value=60 * 9 * 15).map(lambda minutes: timedelta(minutes=minutes))
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(moments, durations)
def test_adding_then_measuring_gives_the_duration_back(start: datetime, duration: timedelta) -> None:
    due = CALENDAR.add(start, duration)
    assert CALENDAR.business_time(start, due) == duration
    # The due moment is the earliest: within working hours of a working day, never at opening.
    day = due.astimezone(SHANGHAI)
    assert CALENDAR.is_working_day(day.date())
    assert time(9) < day.time() <= time(18)


@PROPERTY
@given(moments, moments, moments)
def test_business_time_adds_up(a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    assert CALENDAR.business_time(a, b) + CALENDAR.business_time(b, c) == CALENDAR.business_time(a, c)


pauses_strategy = st.lists(st.tuples(moments, st.integers(min_value=0, max_value=20 * 24 * 60)), max_size=4).map(
    lambda items: [(start, start + timedelta(minutes=length)) for start, length in items])


@PROPERTY
@given(moments, durations, pauses_strategy, moments)
def test_due_moment_agrees_with_the_elapsed_time(start: datetime, target: timedelta,
                                                 pauses: list[sla.Pause], now: datetime) -> None:
    due = sla.due_at(CALENDAR, start, target, pauses)
    assert due is not None  # every pause ends
    assert sla.elapsed(CALENDAR, start, due, pauses) == target
    assert due >= sla.due_at(CALENDAR, start, target)  # pauses never bring it forward
    clock = sla.clock(CALENDAR, start, target, now, pauses)
    if now >= start:
        assert clock.breached == (now >= due)


@PROPERTY
@given(moments, durations, moments)
def test_an_open_pause_freezes_the_clock(start: datetime, target: timedelta, pause_start: datetime) -> None:
    pauses = [(pause_start, None)]
    later = pause_start + timedelta(days=30)
    frozen = sla.elapsed(CALENDAR, start, pause_start, pauses)
    assert sla.elapsed(CALENDAR, start, later, pauses) == frozen
    due = sla.due_at(CALENDAR, start, target, pauses)
    if due is not None:  # reached before the pause began
        assert due <= max(pause_start, start) and frozen >= target
    else:
        assert frozen < target


open_pauses_strategy = st.lists(st.tuples(moments, st.one_of(st.none(), st.integers(min_value=0, max_value=20 * 24 * 60))),
                                max_size=4).map(lambda items: [
                                    (start, None if length is None else start + timedelta(minutes=length))
                                    for start, length in items])


@PROPERTY
@given(moments, durations, open_pauses_strategy, moments, st.one_of(st.none(), moments))
def test_a_clock_is_breached_exactly_when_its_counted_time_reaches_the_target(
        start: datetime, target: timedelta, pauses: list[sla.Pause], now: datetime, stopped_at: datetime | None) -> None:
    # ``breached`` compares the moment read at with the due moment, without counting the
    # working time: it must agree with the count, pauses (open ones too) and stops included.
    clock = sla.clock(CALENDAR, start, target, now, pauses, stopped_at=stopped_at)
    until = min(stopped_at, now) if stopped_at is not None else now
    assert clock.elapsed == sla.elapsed(CALENDAR, start, until, pauses)
    if until >= start:
        assert clock.breached == (clock.elapsed >= target)


@PROPERTY
@given(moments, moments)
def test_long_spans_are_counted_as_the_day_by_day_walk_counts_them(a: datetime, b: datetime) -> None:
    a, b = sorted((a, b))
    assert CALENDAR.business_time(a, b) == CALENDAR.walked_business_time(a, b)


def test_working_days_counts_holidays_and_make_up_days() -> None:
    # October 2026: the National Day holiday (1-7, with 8 the last) and the make-up Saturday 10th.
    assert CALENDAR.working_days(date(2026, 10, 1), date(2026, 10, 31)) == \
        sum(CALENDAR.is_working_day(date(2026, 10, d)) for d in range(1, 32))
    assert CALENDAR.working_days(date(2026, 10, 2), date(2026, 10, 1)) == 0
