"""Progress against what bounds the run: a step cap, or a time budget that ends first."""

from __future__ import annotations

import io

import pytest

from dmgan import progress as progress_module
from dmgan.progress import Progress


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    return now


def _line(clock, total, budget_s, seconds, done) -> str:
    """The plain progress line after `done` steps in `seconds`."""
    bar = Progress(total, "train", unit="step", budget_s=budget_s, live=False,
                   stream=io.StringIO())
    clock[0] += seconds
    bar.n = done
    return bar.line()


def test_a_time_budget_that_ends_first_is_what_progress_counts(clock):
    """The demo: a 15-minute budget and a step cap it will never reach."""
    line = _line(clock, 156_200, 900, 300, 3000)
    assert "3000 step," in line and "156200" not in line
    assert "elapsed 5:00 of 15:00 (33%)" in line and "ETA 10:00" in line


def test_a_step_cap_reached_first_is_what_progress_counts(clock):
    line = _line(clock, 100, 900, 5, 50)
    assert "50/100 (50%)" in line and "of 15:00" not in line and "ETA 0:05" in line
    assert "25/100 (25%)" in _line(clock, 100, None, 5, 25)


def test_the_live_bar_with_a_budget_shows_its_share(clock):
    out = io.StringIO()
    bar = Progress(156_200, "train", unit="step", budget_s=900, live=True, stream=out)
    clock[0] += 450
    bar.update(10)
    bar.close()
    text = out.getvalue()
    assert "156200" not in text and "elapsed 7:30 of 15:00 (50%)" in text
