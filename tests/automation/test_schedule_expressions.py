"""Schedule expressions evaluated as EventBridge does (UTC, six cron fields)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines.automation.schedule_expressions import ScheduleError, due, next_fire

NOW = datetime(2026, 12, 1, 1, 30, 20, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("rate(1 minute)", datetime(2026, 12, 1, 1, 31, 20, tzinfo=UTC)),
        ("rate(5 minutes)", datetime(2026, 12, 1, 1, 35, 20, tzinfo=UTC)),
        ("rate(7 days)", datetime(2026, 12, 8, 1, 30, 20, tzinfo=UTC)),
        ("cron(0 12 * * ? *)", datetime(2026, 12, 1, 12, 0, tzinfo=UTC)),
        ("cron(0/15 * * * ? *)", datetime(2026, 12, 1, 1, 45, tzinfo=UTC)),
        ("cron(15 10 ? * MON-FRI *)", datetime(2026, 12, 1, 10, 15, tzinfo=UTC)),
        ("cron(0 8 ? * SUN *)", datetime(2026, 12, 6, 8, 0, tzinfo=UTC)),
        ("cron(0 0 1 JAN ? *)", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("cron(30 1 1 12 ? 2027)", datetime(2027, 12, 1, 1, 30, tzinfo=UTC)),
        ("cron(0 18 L * ? *)", None),
    ],
)
def test_next_fire(expression, expected):
    if expected is None:
        with pytest.raises(ScheduleError, match="not a value this evaluator supports"):
            next_fire(expression, NOW)
        return
    assert next_fire(expression, NOW) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 minutes)", "singular unit"),
        ("rate(2 minute)", "singular unit"),
        ("rate(0 minutes)", "at least 1"),
        ("cron(0 12 * * *)", "6 fields"),
        ("cron(0 12 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 12 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(61 12 * * ? *)", "outside 0-59"),
        ("every day", "Unknown schedule expression"),
    ],
)
def test_invalid_expressions_are_refused_with_the_reason(expression, message):
    with pytest.raises(ScheduleError, match=message):
        next_fire(expression, NOW)


def test_due_once_the_period_has_passed_since_the_last_run():
    last = datetime(2026, 12, 1, 1, 0, 0, tzinfo=UTC)
    assert not due("rate(1 minute)", last, datetime(2026, 12, 1, 1, 0, 59, tzinfo=UTC))
    assert due("rate(1 minute)", last, datetime(2026, 12, 1, 1, 1, 0, tzinfo=UTC))
    assert not due("cron(0 12 * * ? *)", last, datetime(2026, 12, 1, 11, 59, tzinfo=UTC))
    assert due("cron(0 12 * * ? *)", last, datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
