"""Who is a child: under 13 by the profile's birthdate, on the calendar of
the last time zone to reach the birthday (UTC-12)."""

from __future__ import annotations

import datetime as dt

from fabula_users.accounts.service import is_child


def test_under_13_is_a_child_until_the_13th_birthday_and_no_birthdate_is_not():
    today = dt.date(2026, 6, 15)
    assert is_child(dt.date(2013, 6, 16), today)  # 12, the birthday is tomorrow
    assert not is_child(dt.date(2013, 6, 15), today)  # 13 today
    assert is_child(dt.date(2020, 1, 1), today)
    assert not is_child(dt.date(1990, 1, 1), today)
    assert not is_child(None, today)
    # Born on 29 February: 13 on 1 March of a common year.
    assert is_child(dt.date(2012, 2, 29), dt.date(2025, 2, 28))
    assert not is_child(dt.date(2012, 2, 29), dt.date(2025, 3, 1))
