"""May this start now, and if not, when: windows, freezes, emergencies (core.change_control)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from properties import examples

from byoi_bot.core.change_control import (
    ChangeControlError,
    Freeze,
    Window,
    decide,
)

PARIS_TUESDAY = Window.parse("Tue 22:00-02:00 Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_window_that_wraps_past_midnight_is_open_until_its_end_the_next_day():
    # 2026-12-08 is a Tuesday; Paris is UTC+1 in winter.
    assert PARIS_TUESDAY.open_span(utc(2026, 12, 8, 20, 59)) is None
    span = PARIS_TUESDAY.open_span(utc(2026, 12, 8, 21, 0))
    assert span == (utc(2026, 12, 8, 21, 0), utc(2026, 12, 9, 1, 0))
    assert PARIS_TUESDAY.open_span(utc(2026, 12, 9, 0, 59)) == span
    assert PARIS_TUESDAY.open_span(utc(2026, 12, 9, 1, 0)) is None


def test_outside_a_window_the_start_waits_for_the_next_opening():
    decision = decide(utc(2026, 12, 9, 1, 0), windows=(PARIS_TUESDAY,))
    assert not decision.now
    assert decision.start_at == utc(2026, 12, 15, 21, 0)
    assert decision.reason == "the next maintenance window"


def test_inside_a_window_it_starts_now_and_knows_when_the_window_ends():
    decision = decide(utc(2026, 12, 8, 23, 0), windows=(PARIS_TUESDAY,))
    assert decision.now
    assert decision.window_ends == utc(2026, 12, 9, 1, 0)


def test_the_window_keeps_its_wall_clock_time_across_the_spring_daylight_saving_change():
    # Europe/Paris moves to UTC+2 on Sunday 2027-03-28: 22:00 local is 21:00 UTC before,
    # 20:00 UTC after.
    before = decide(utc(2027, 3, 24, 12, 0), windows=(PARIS_TUESDAY,))
    assert before.start_at == utc(2027, 3, 30, 20, 0)
    winter = decide(utc(2027, 3, 17, 12, 0), windows=(PARIS_TUESDAY,))
    assert winter.start_at == utc(2027, 3, 23, 21, 0)


def test_a_window_inside_the_autumn_change_lasts_its_real_length():
    # 2026-10-25 (Sunday): 03:00 CEST becomes 02:00 CET; a 01:00-04:00 window lasts 4 h.
    window = Window.parse("Sun 01:00-04:00 Europe/Paris")
    start, end = window.open_span(utc(2026, 10, 25, 0, 30))
    assert (start, end) == (utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0))
    assert end - start == timedelta(hours=4)


def test_a_start_time_the_spring_change_skips_moves_forward_like_the_wall_clock():
    window = Window.parse("Sun 02:30-05:00 Europe/Paris")  # 02:30 does not exist 2027-03-28
    start, _ = window.open_span(utc(2027, 3, 28, 2, 0))
    assert start == utc(2027, 3, 28, 1, 30)  # 03:30 CEST


def test_day_ranges_cover_every_day_in_them():
    weekdays = Window.parse("Mon-Fri 09:00-17:00 UTC")
    assert weekdays.days == (0, 1, 2, 3, 4)
    assert decide(utc(2026, 12, 12, 10, 0), windows=(weekdays,)).start_at == utc(2026, 12, 14, 9, 0)
    weekend = Window.parse("Fri-Mon 20:00-06:00 UTC")
    assert weekend.days == (4, 5, 6, 0)


def test_a_freeze_holds_the_start_until_it_ends_then_the_window_decides():
    freeze = Freeze("fz-1", utc(2026, 12, 20), utc(2027, 1, 4), "year-end freeze")
    decision = decide(
        utc(2026, 12, 22, 21, 30), windows=(PARIS_TUESDAY,), freezes=(freeze,), policy="prod"
    )
    assert not decision.now
    assert decision.start_at == utc(2027, 1, 5, 21, 0)  # the first Tuesday window after
    assert "fz-1" in decision.reason and "year-end freeze" in decision.reason


def test_a_freeze_scoped_to_other_policies_does_not_hold_this_one():
    freeze = Freeze("fz-1", utc(2026, 12, 20), utc(2027, 1, 4), "db", policies=("database",))
    assert decide(utc(2026, 12, 22), freezes=(freeze,), policy="lab").now
    assert not decide(utc(2026, 12, 22), freezes=(freeze,), policy="database").now


def test_at_inside_a_window_is_honoured_and_an_emergency_skips_windows_and_freezes():
    at = utc(2026, 12, 8, 22, 30)
    decision = decide(utc(2026, 12, 8, 12, 0), at=at, windows=(PARIS_TUESDAY,))
    assert decision.start_at == at and not decision.now
    freeze = Freeze("fz-1", utc(2026, 12, 1), utc(2026, 12, 31), "freeze")
    emergency = decide(
        utc(2026, 12, 9, 12, 0), windows=(PARIS_TUESDAY,), freezes=(freeze,), emergency=True
    )
    assert emergency.now
    assert emergency.overridden == ("window", "freeze")


def test_windows_that_never_open_outside_freezes_are_reported_not_looped_on():
    daily = Window.parse("Mon-Sun 01:00-02:00 UTC")
    forever = Freeze("fz-9", utc(2026, 1, 1), utc(2036, 1, 1), "forever")
    now = utc(2026, 12, 4)
    assert decide(now, windows=(daily,), freezes=(forever,)).start_at == forever.ends.replace(
        hour=1
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is not `Day HH:MM-HH:MM Zone`"),
        ("Tuesday 22:00-02:00 UTC", "is not `Day HH:MM-HH:MM Zone`"),
        ("Tue 25:00-02:00 UTC", "is not a time of day"),
        ("Tue 22:61-02:00 UTC", "is not a time of day"),
        ("Tue 22:00-22:00 UTC", "starts and ends at the same time"),
        ("Tue 22:00-02:00 Mars/Olympus", "is not a time zone name"),
        ("Tue 22:00-02:00 ../../etc/passwd", "is not a time zone name"),
        ("Xyz 22:00-02:00 UTC", "days are written Mon"),
        ("Tue 22:00-02:00", "is not `Day HH:MM-HH:MM Zone`"),
    ],
)
def test_a_bad_window_is_refused_with_what_is_expected(text, says):
    with pytest.raises(ChangeControlError, match=says.replace("(", r"\(").replace(")", r"\)")):
        Window.parse(text)


@examples(300)
@given(
    now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31)),
    zone=st.sampled_from(["Europe/Paris", "America/Montreal", "Australia/Sydney", "UTC"]),
    day=st.integers(0, 6),
    start=st.integers(0, 23),
    length=st.integers(1, 23),
)
def test_the_decided_start_is_always_inside_the_window_and_never_in_the_past(
    now, zone, day, start, length
):
    names = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    window = Window.parse(f"{names[day]} {start:02d}:00-{(start + length) % 24:02d}:00 {zone}")
    now = now.replace(tzinfo=UTC)
    decision = decide(now, windows=(window,))
    assert decision.start_at >= now
    assert window.open_span(decision.start_at) is not None
    assert decision.start_at - now <= timedelta(days=7, hours=2)


# -- the policy file: windows, emergencies, freezes ------------------------------------------


def load(tmp_path, text: str):
    from byoi_bot.config import Settings

    path = tmp_path / "byoi.toml"
    path.write_text(text)
    return Settings.load({"BYOI_CONFIG": str(path)})


def test_a_policy_file_sets_windows_emergencies_and_freezes(tmp_path):
    settings = load(
        tmp_path,
        """
[[policy]]
name = "prod"
pattern = "ns*"
approvers = ["U1", "U2"]
windows = ["Tue 22:00-02:00 Europe/Paris", "Sat-Sun 00:00-06:00 UTC"]
emergency_requesters = ["S0ONCALL"]
emergency_required_approvals = 1
emergency_review_within = "2h"
freeze_admins = ["U1"]

[[freeze]]
from = 2026-12-20
to = 2027-01-04T08:00:00+01:00
reason = "year end"
policies = ["prod"]
""",
    )
    prod = settings.policies.by_name("prod", "ns1")
    assert [w.describe() for w in prod.windows] == [
        "Tue 22:00–02:00 Europe/Paris",
        "Sat-Sun 00:00–06:00 UTC",
    ]
    assert prod.emergency_requesters == {"S0ONCALL"} and prod.emergency_required == 1
    assert prod.review_within == timedelta(hours=2) and prod.freeze_admins == {"U1"}
    assert prod.for_emergency().required == 1 and prod.required == 1
    (freeze,) = settings.policies.freezes
    assert freeze.starts == datetime(2026, 12, 20, tzinfo=UTC)
    assert freeze.ends == datetime(2027, 1, 4, 7, tzinfo=UTC)
    assert freeze.policies == ("prod",)


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('windows = "Tue 22:00-02:00 UTC"', "`windows` is a list of strings"),
        ('windows = ["Tue 22:00-02:00 Mars/Base"]', "is not a time zone name"),
        ("windows = [42]", "`windows` is a list of strings"),
        ('emergency_requesters = ["alice"]', "is not a Slack ID"),
        ("emergency_required_approvals = 0", "must be at least 1"),
        ('emergency_review_within = "2"', "has no unit"),
        ('freeze_admins = ["@bob"]', "is not a Slack ID"),
    ],
)
def test_a_bad_change_control_key_is_named_with_what_is_expected(tmp_path, table, says):
    from byoi_bot.config import ConfigError

    with pytest.raises(ConfigError, match=re.escape(says)):
        load(tmp_path, f'[[policy]]\npattern = "ns*"\n{table}\n')


@pytest.mark.parametrize(
    ("freeze", "says"),
    [
        ('from = 2026-12-20\nreason = "x"', "expected the keys from, to, reason"),
        ('from = 2026-12-20\nto = 2026-12-19\nreason = "x"', "`to` must be after `from`"),
        ('from = "soon"\nto = 2026-12-21\nreason = "x"', "is a TOML date-time with its offset"),
        ("from = 2026-12-20T10:00:00\nto = 2026-12-21\nreason = 'x'", "with its offset"),
        ('from = 2026-12-20\nto = 2026-12-21\nreason = " "', "`reason` must say why"),
        ('from = 2026-12-20\nto = 2026-12-21\nreason = "x"\npolicies = ["nope"]', "policy names"),
        ('from = 2026-12-20\nto = 2026-12-21\nreason = "x"\nwhy = 1', "expected the keys"),
    ],
)
def test_a_bad_freeze_table_is_named_with_what_is_expected(tmp_path, freeze, says):
    from byoi_bot.config import ConfigError

    with pytest.raises(ConfigError, match=re.escape(says)):
        load(tmp_path, f"[[freeze]]\n{freeze}\n")
