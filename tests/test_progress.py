"""Progress bars: quiet when asked, one log line in pipes, a live bar on a terminal."""

from __future__ import annotations

import logging
import os
import pty
import subprocess
import sys
import textwrap

import pytest

from clvmodels import progress
from clvmodels.progress import ProgressBar, progress_bar


def test_disabled_bar_counts_but_shows_nothing(capsys, caplog):
    caplog.set_level(logging.INFO, logger="clvmodels.progress")
    with progress_bar(10, "Quiet work", enabled=False) as bar:
        bar.advance(3)
        bar.update(completed=7, description="Still quiet")
    assert type(bar) is ProgressBar
    assert bar.completed == 7 and bar.description == "Still quiet"
    assert capsys.readouterr() == ("", "")
    assert caplog.records == []


def test_pipes_get_one_log_line_at_the_end(capsys, caplog):
    # Under pytest stderr is captured, i.e. not a terminal: the log mode.
    caplog.set_level(logging.INFO, logger="clvmodels.progress")
    with progress_bar(500, "Scoring customers") as bar:
        for _ in range(500):
            bar.advance()
    assert capsys.readouterr() == ("", "")
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith("Scoring customers: 500/500 done in")


def test_environment_switch_turns_bars_off(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="clvmodels.progress")
    monkeypatch.setenv("CLVMODELS_PROGRESS", "0")
    with progress_bar(None, "Anything") as bar:
        bar.advance()
    assert type(bar) is ProgressBar and caplog.records == []


def test_bar_closes_when_the_work_fails(caplog):
    caplog.set_level(logging.INFO, logger="clvmodels.progress")
    with pytest.raises(RuntimeError), progress_bar(10, "Failing work") as bar:
        bar.advance(2)
        raise RuntimeError("stop")
    # Two items were finished when the work stopped; the bar closed all the same.
    assert "2/10 done" in caplog.records[-1].getMessage()


def test_notebook_bar_updates_one_display(monkeypatch):
    shown = []

    class Handle:
        def update(self, bundle, raw):
            shown.append(("update", bundle))

    def display(bundle, raw, display_id):
        shown.append(("display", bundle))
        return Handle()

    import IPython.display

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(progress, "_in_notebook", lambda: True)
    monkeypatch.setattr(progress, "_NOTEBOOK_REFRESH", 0.0)
    with progress_bar(4, "Fitting <models>") as bar:
        for _ in range(4):
            bar.advance()
    assert shown[0][0] == "display" and all(kind == "update" for kind, _ in shown[1:])
    last = shown[-1][1]
    assert '<progress value="1.0000"' in last["text/html"]
    assert "Fitting &lt;models&gt; 100% 4/4" in last["text/html"]
    assert last["text/plain"].startswith("Fitting <models> 100% 4/4")


def test_terminal_bar_draws_nested_bars_on_a_tty():
    script = textwrap.dedent(
        """
        import time
        from clvmodels.progress import progress_bar
        with progress_bar(2, "Outer job") as outer:
            with progress_bar(3, "Inner step") as inner:
                for _ in range(3):
                    inner.advance()
            outer.advance(2)
        print("finished")
        """
    )
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    env.pop("CLVMODELS_PROGRESS", None)
    proc = subprocess.run(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=follower, env=env,
        timeout=60, check=False,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    drawn = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    assert proc.stdout.decode().strip() == "finished"
    assert "Outer job" in drawn and "Inner step" in drawn
    assert "2/2" in drawn


@pytest.mark.parametrize("total", [None, 0])
def test_unknown_or_empty_totals(total, caplog):
    caplog.set_level(logging.INFO, logger="clvmodels.progress")
    with progress_bar(total, "Open-ended") as bar:
        bar.advance(5)
    assert "Open-ended: 5" in caplog.records[-1].getMessage()
