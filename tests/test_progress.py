"""The progress-bar policy (vssl_helpers/progress.py): a few lines per loop in a log, none when off."""

from __future__ import annotations

import io
import os

import pytest

from vssl_helpers import progress as P


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _auto(monkeypatch):
    monkeypatch.delenv(P.ENV, raising=False)


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


@pytest.mark.parametrize("n", [7, 1000, 100_000])
def test_log_mode_writes_at_most_a_dozen_lines_per_loop_whatever_its_length(monkeypatch, n):
    monkeypatch.setattr(P, "LOG_MIN_INTERVAL_S", 0.0)  # only the count rule limits the lines here
    log = io.StringIO()
    b = P.bar(range(n), desc="loop", file=log)
    for i in b:
        b.set_postfix(i=i)  # a live bar redraws at every postfix change; a log must not
    lines = _lines(log.getvalue())
    assert "\r" not in log.getvalue(), "each update is its own line in a log"
    assert 2 <= len(lines) <= P.LOG_LINES + 3
    assert lines[0].startswith("loop:") and f"{n}/{n}" in lines[-1]
    # the count advances by about a tenth of the loop between lines
    counts = [int(line.split("/")[0].split()[-1]) for line in lines]
    assert counts == sorted(counts) and counts[-1] == n


def test_log_mode_time_rule_keeps_a_fast_loop_to_its_first_and_last_line():
    log = io.StringIO()
    b = P.bar(total=50_000, desc="fast", file=log)
    for _ in range(50_000):
        b.update(1)
    b.close()
    assert len(_lines(log.getvalue())) <= 3


def test_terminal_mode_is_tqdm_live_bar():
    tty = _Tty()
    assert P.mode(tty) == "terminal" and P.mode(io.StringIO()) == "log"
    b = P.bar(range(3), desc="live", file=tty)
    list(b)
    assert "\r" in tty.getvalue()


def test_switched_off_silences_every_bar_and_is_restored(monkeypatch):
    log, tty = io.StringIO(), _Tty()
    with P.switched(False):
        assert os.environ[P.ENV] == "0" and not P.enabled()
        assert P.mode(tty) == "off"
        for stream in (log, tty):
            list(P.bar(range(100), desc="quiet", file=stream))
    assert log.getvalue() == "" and tty.getvalue() == ""
    assert P.ENV not in os.environ and P.enabled()
    monkeypatch.setenv(P.ENV, "log")
    assert P.mode(tty) == "log", "VSSL_PROGRESS=log forces log mode on a terminal"


def test_callers_own_switch_disables_the_bar():
    log = io.StringIO()
    list(P.bar(range(10), desc="x", file=log, disable=True))
    assert log.getvalue() == ""


def test_package_makes_every_bar_through_the_policy():
    """One home for the tqdm policy: no module of the package creates a tqdm bar itself."""
    from pathlib import Path

    import vssl_helpers

    pkg = Path(vssl_helpers.__file__).parent
    offenders = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
                 if p.name != "progress.py" and ("from tqdm" in p.read_text() or "import tqdm" in p.read_text())]
    assert offenders == []


@pytest.mark.parametrize("flag, expect", [(False, False), (None, True)])
def test_book_no_progress_reaches_the_prepare_steps_and_kernels(monkeypatch, flag, expect):
    """`vssl book --no-progress` (run_book(progress=False)) switches the bars off for everything the
    book runs: the prepare steps in this process and the notebook kernels (through the environment)."""
    from vssl_helpers import pipeline

    seen = {}

    def fake_execute(specs, **kw):
        seen["enabled"] = P.enabled()
        seen["env"] = os.environ.get(P.ENV)
        return []

    monkeypatch.setattr(pipeline, "execute_notebooks", fake_execute)
    assert pipeline.run_book(build=False, progress=flag) == 0
    assert seen["enabled"] is expect and seen["env"] == (None if expect else "0")
    assert P.ENV not in os.environ, "the setting is restored after the run"
