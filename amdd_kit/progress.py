"""Signs of life while papermill runs a notebook: the section, the cell count, the elapsed time.

:class:`NotebookProgress` is fed by nbclient's execution hooks, which
``papermill.execute_notebook(..., **progress.hooks())`` hands to its ``NotebookClient``:
``on_notebook_start`` (the parameterised notebook: how many code cells) and ``on_cell_start``
(called for every cell, markdown included, just before it runs: a ``##`` heading starts a
section, a code cell advances the counter). A small thread refreshes the status, so a cell that
trains for minutes still shows its clock moving:

* in a terminal, one line rewritten in place every second, cleared when the notebook ends::

      ## 2 · The seven ablation rows · cell 9/31 · 3:12 (this cell 2:40)

* in a log (stdout not a terminal: cron, CI), plain lines: one when a section starts (at most
  one every :data:`LOG_MIN_GAP` seconds) and one every :data:`LOG_HEARTBEAT` seconds while
  nothing else was printed, so a long training leaves a line a minute, not a flood.

What the notebook prints (fastai's progress bars included) stays in the executed notebook.
"""
from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import Any, Callable, TextIO

#: log mode: at most one line per this many seconds when sections change quickly
LOG_MIN_GAP = 10.0
#: log mode: a line after this many seconds without one (a long cell still shows it runs)
LOG_HEARTBEAT = 60.0
#: the section shown until the kernel runs the notebook's first cell
KERNEL_STARTING = "starting the kernel"
#: terminal mode: how often the line's clock is redrawn (seconds)
TTY_REFRESH = 1.0


def clock(seconds: float) -> str:
    """``75.4`` -> ``"1:15"``; ``3725`` -> ``"1:02:05"``."""
    s = int(seconds)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def section_heading(source: str) -> str | None:
    """The text of the first ``## `` heading line of a markdown cell, else None."""
    for line in source.splitlines():
        if line.startswith("## "):
            return line[3:].strip()
    return None


class NotebookProgress:
    """Status of one running notebook, printed to ``stream`` (default ``sys.stdout``).

    Use as a context manager around ``papermill.execute_notebook`` and pass :meth:`hooks` to it::

        with NotebookProgress() as prog:
            pm.execute_notebook(src, dst, ..., **prog.hooks())

    Args:
        stream: where the status goes.
        live: one line redrawn in place (True) or plain log lines (False); default: whether
            ``stream`` is a terminal.
        indent: printed before every status.
        now: the clock (tests pass a fake one).
    """

    def __init__(self, stream: TextIO | None = None, live: bool | None = None,
                 indent: str = "    ", now: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.indent = indent
        self.now = now
        self.section = KERNEL_STARTING
        self.cell = 0                 # code cells started so far
        self.total = 0                # code cells with source in the notebook
        self.started = self.cell_started = now()
        # log mode: nothing while the kernel starts, unless that takes a heartbeat
        self._printed_section: str | None = KERNEL_STARTING
        self._last_line = self.started
        self._width = 0               # characters of the live line now on screen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- nbclient hooks (called in the thread that runs papermill) --------------------------
    def hooks(self) -> dict[str, Callable[..., None]]:
        """The keyword arguments for ``papermill.execute_notebook`` (nbclient traits)."""
        return {"on_notebook_start": self.notebook_start, "on_cell_start": self.cell_start}

    def notebook_start(self, notebook: Any, **_: Any) -> None:
        with self._lock:
            self.total = sum(1 for c in notebook.cells
                             if c.cell_type == "code" and c.source.strip())
            self.cell_started = self.now()   # the clock keeps the kernel's start-up time
            self.section = "start"
            self._last_line = float("-inf")   # the log says at once how many cells there are
        self.tick()

    def cell_start(self, cell: Any, cell_index: int, **_: Any) -> None:
        with self._lock:
            self.cell_started = self.now()   # whatever ran before has finished
            if cell.cell_type == "markdown":
                heading = section_heading(cell.source)
                if heading:
                    self.section = heading
                return
            if cell.cell_type != "code" or not cell.source.strip():
                return   # nbclient skips it
            self.cell += 1
        self.tick()

    # -- output ---------------------------------------------------------------------------
    def status(self) -> str:
        """``"## <section> · cell k/n · m:ss (this cell m:ss)"``."""
        t = self.now()
        if self.section == KERNEL_STARTING:
            return f"{KERNEL_STARTING} · {clock(t - self.started)}"
        text = f"## {self.section} · cell {self.cell}/{self.total} · {clock(t - self.started)}"
        if t - self.cell_started >= 10:
            text += f" (this cell {clock(t - self.cell_started)})"
        return text

    def tick(self) -> None:
        """Redraw the live line, or print a log line when one is due."""
        with self._lock:
            line = self.indent + self.status()
            if self.live:
                width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
                line = line[:width]
                pad = " " * max(0, self._width - len(line))
                self.stream.write("\r" + line + pad)
                self.stream.flush()
                self._width = len(line)
                return
            t = self.now()
            changed = self.section != self._printed_section
            if (changed and t - self._last_line >= LOG_MIN_GAP) \
                    or t - self._last_line >= LOG_HEARTBEAT:
                print(line, file=self.stream, flush=True)
                self._printed_section, self._last_line = self.section, t

    def clear(self) -> None:
        """Wipe the live line so the next print starts on a clean line."""
        with self._lock:
            if self.live and self._width:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
                self._width = 0

    def _run(self) -> None:
        while not self._stop.wait(TTY_REFRESH):
            self.tick()

    def __enter__(self) -> "NotebookProgress":
        self._thread = threading.Thread(target=self._run, name="notebook-progress",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.clear()
