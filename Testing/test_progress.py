"""Progress bars: a readable line every few seconds in a log file, tqdm on a terminal."""

import io

from cmrrisk.progress import LineProgress, is_terminal, progress_bar


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_log_file_gets_one_line_per_interval_not_carriage_returns():
    out, clock = io.StringIO(), FakeClock()
    bar = LineProgress(total=3000, desc="segment", unit="frame", file=out, interval=5.0, clock=clock)
    for i in range(2999):  # 3000 updates over 30 s
        clock.t = (i + 1) / 100
        bar.update(1)
    clock.t = 29.995  # the last update falls between two lines: close writes it
    bar.update(1)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 6  # one every 5 s (5 to 25 s), and the last one on close
    assert lines[0] == "segment: 500/3000 frame (17 %), 5 s, about 25 s left"
    assert lines[-1] == "segment: 3000/3000 frame (100 %), 30 s"
    bar.close()  # closing twice writes nothing more
    assert len(out.getvalue().splitlines()) == 6


def test_iteration_without_total_and_quick_runs():
    out, clock = io.StringIO(), FakeClock()
    items = list(LineProgress(iter(range(4)), desc="subjects", unit="subject", file=out, clock=clock))
    assert items == [0, 1, 2, 3]
    assert out.getvalue() == "subjects: 4 subject, 0 s\n"  # a quick run: only the closing line


def test_progress_bar_picks_by_stream():
    log = io.StringIO()
    assert not is_terminal(log) and isinstance(progress_bar(total=5, file=log), LineProgress)
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed) and not is_terminal(object())
    tty = Terminal()
    bar = progress_bar(total=5, desc="x", file=tty)
    assert not isinstance(bar, LineProgress)  # tqdm on a terminal
    for _ in range(5):
        bar.update(1)
    bar.close()
    assert "\r" in tty.getvalue()


def test_run_subjects_writes_lines_to_a_non_terminal_stderr(monkeypatch, capsys):
    import sys

    from cmrrisk.parallel import run_subjects

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    out = run_subjects(abs, [(k, (-k,)) for k in range(50)], workers=1, desc="features")
    assert out == {k: k for k in range(50)}
    assert "\r" not in log.getvalue()
    assert log.getvalue().splitlines()[-1].startswith("features: 50/50 subject (100 %)")
