"""Progress of long commands, for a person at a terminal and for a log file.

The library reports progress through one protocol, `qcapprox.words.Progress`: a callback
`progress(done, total)`. A `Board` turns such callbacks into

- rich bars when the output is a terminal (one bar per step: name, bar, done/total, a
  detail such as rows written, elapsed and remaining time);
- `logging` lines otherwise (a run logged to a file): one line per step, or every 5 %
  / 30 s of a long one, with counts and the ETA, e.g.
  `label sc60pt13.h5: 100/215 structures (47 %), ETA 1.0 h`.

Both go to stdout with the command's other output, so stderr holds errors only (one line
each, `qcapprox.cli.main`).

Warnings (Python `warnings`, e.g. torch's UserWarnings under CHGNet) are shown once each,
as log lines that never break the bars: those of the command's own process, and those of
the local dask workers a board with `workers=True` starts (they load this module as their
dask preload, `dask_setup`, and send each distinct warning once to the client).
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from contextlib import ExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

from qcapprox.cli.core import console

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress

LOG = logging.getLogger("qcapprox")
#: A log line at least every this many seconds (and each step of at least `LOG_SHARE`).
LOG_SECONDS = 30.0
LOG_SHARE = 0.05
#: The dask event topic of the workers' warnings.
WARNINGS_TOPIC = "qcapprox-warnings"


class _Stdout(logging.StreamHandler):
    """A handler writing to whatever `sys.stdout` is now (a test's capture, rich's
    redirection under a live bar), not the stream of the moment it was made."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        """The stream is always sys.stdout."""


def configure_logging() -> None:
    """Send the package's log lines (progress, warnings) to stdout, with the time: once."""
    if not any(isinstance(h, _Stdout) for h in LOG.handlers):
        handler = _Stdout()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        LOG.propagate = False


class Step:
    """The progress callback of one step (`qcapprox.words.Progress`), with an optional
    `detail` (e.g. rows written) shown beside the counts."""

    def __init__(self, board: Board, name: str, unit: str) -> None:
        self.name, self.unit, self._board = name, unit, board
        self._task = board.bars.add_task(name, total=None, detail="") if board.bars else None
        self._first: tuple[float, int] | None = None  # (time, done) of the first report
        self._logged: tuple[float, int] = (time.monotonic(), -1)

    def __call__(self, done: int, total: int, detail: str = "") -> None:
        now = time.monotonic()
        self._board.listen_to_workers()
        if self._first is None:
            self._first = (now, done)
            self._logged = (now, done)  # a resumed run's starting count is no step
        if self._task is not None and self._board.bars is not None:
            self._board.bars.update(self._task, completed=done, total=total, detail=detail)
            return
        last_time, last_done = self._logged
        share = (done - last_done) / total if total else 1.0
        due = done >= total or share >= LOG_SHARE or now - last_time >= LOG_SECONDS
        if done > last_done and due:
            self._logged = (now, done)
            LOG.info(self.line(done, total, detail, now))

    def line(self, done: int, total: int, detail: str, now: float) -> str:
        """The log line of a report: counts, share, detail and ETA (or time taken)."""
        from qcapprox.enumeration.run import human_duration

        unit = f" {self.unit}" if self.unit else ""
        text = f"{self.name}: {done:,}/{total:,}{unit}"
        if total:
            text += f" ({100 * done / total:.0f} %)"
        if detail:
            text += f", {detail}"
        start, first = self._first or (now, done)
        if done >= total:
            return f"{text}, done in {human_duration(now - start)}"
        if done > first and now > start:
            rate = (done - first) / (now - start)
            return f"{text}, ETA {human_duration((total - done) / rate)}"
        return text


class Board:
    """The progress display of one command: `with Board() as board: f(progress=board.step(
    "name"))`. Bars on a terminal, log lines otherwise; warnings shown once (`workers`:
    those of the local dask workers started meanwhile too)."""

    def __init__(self, workers: bool = False) -> None:
        self.console = console
        self.bars: RichProgress | None = None
        self._workers = workers
        self._seen: set[tuple[str, str]] = set()
        self._clients: set[int] = set()
        self._stack = ExitStack()

    def step(self, name: str, unit: str = "") -> Step:
        """A new step's progress callback: `unit` names what is counted."""
        return Step(self, name, unit)

    def __enter__(self) -> Board:
        configure_logging()
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            columns = (
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            )  # fmt: skip
            self.bars = self._stack.enter_context(Progress(*columns, console=self.console))
        self._stack.enter_context(warnings.catch_warnings())
        warnings.showwarning = self._show
        if self._workers:
            import dask

            preload = [*dask.config.get("distributed.worker.preload", []), __name__]
            self._stack.enter_context(dask.config.set({"distributed.worker.preload": preload}))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()

    def warn_once(self, category: str, message: str, where: str) -> None:
        """Show a warning the first time this command meets it."""
        if (category, message) not in self._seen:
            self._seen.add((category, message))
            LOG.warning(f"warning (shown once): {category}: {message} ({where})")

    def _show(
        self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
        file: Any = None, line: str | None = None,
    ) -> None:  # fmt: skip
        """`warnings.showwarning` under the board."""
        self.warn_once(category.__name__, str(message), f"{filename}:{lineno}")

    def listen_to_workers(self) -> None:
        """Show the warnings of the dask workers of the current client (once it exists)."""
        if not self._workers:
            return
        from distributed import default_client

        try:
            client = default_client()
        except ValueError:  # no client yet
            return
        if id(client) in self._clients:
            return
        self._clients.add(id(client))
        for event in client.get_events(WARNINGS_TOPIC):  # sent before we listened
            self._worker_warning(event)
        client.subscribe_topic(WARNINGS_TOPIC, self._worker_warning)

    def _worker_warning(self, event: tuple[float, dict[str, str]]) -> None:
        msg = event[1]
        self.warn_once(msg["category"], msg["message"], f"dask worker, {msg['where']}")


def dask_setup(worker: Any) -> None:
    """dask preload of the local workers a `Board(workers=True)` starts: each distinct
    warning goes once to the client as an event, instead of to the worker's stderr."""
    seen: set[tuple[str, str]] = set()

    def show(
        message: Warning | str, category: type[Warning], filename: str, lineno: int,
        file: Any = None, line: str | None = None,
    ) -> None:  # fmt: skip
        key = (category.__name__, str(message))
        if key not in seen:
            seen.add(key)
            event = {"category": key[0], "message": key[1], "where": f"{filename}:{lineno}"}
            worker.log_event(WARNINGS_TOPIC, event)

    warnings.showwarning = show
