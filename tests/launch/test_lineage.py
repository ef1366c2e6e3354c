"""What an execution records about where it came from: its trigger, code and time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines.core.errors import MlopsError
from pipelines.launch.lineage import check_trigger, trigger_of
from pipelines.launch.prepare import display_name

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("lineage", "expected"),
    [
        ({"trigger": "manual", "git_commit": SHA}, "manual-01234567-20260304-050607"),
        (
            {"trigger": "new-data", "git_commit": SHA, "git_dirty": True},
            "new-data-01234567-dirty-20260304-050607",
        ),
        ({"trigger": "schedule", "git_commit": None}, "schedule-20260304-050607"),
    ],
)
def test_display_names_say_what_started_a_run_on_which_code_and_when(lineage, expected):
    name = display_name(lineage, WHEN)
    assert name == expected
    assert trigger_of(name, {}) == lineage["trigger"]  # what AWS gives back: the name alone


def test_two_runs_of_the_same_code_get_different_names():
    lineage = {"trigger": "manual", "git_commit": SHA}
    later = WHEN.replace(second=8)
    assert display_name(lineage, WHEN) != display_name(lineage, later)


def test_an_unknown_trigger_is_refused_and_other_names_have_none():
    with pytest.raises(MlopsError, match="Unknown trigger 'cron': use one of manual, schedule"):
        check_trigger("cron")
    assert trigger_of("run-01234567", {}) is None
    assert trigger_of("anything", {"trigger": "commit"}) == "commit"
