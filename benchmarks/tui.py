"""Terminal UI speed: first-frame time and key-to-screen latency (median, max).

- first frame: a fresh interpreter imports the UI, opens the app headless and draws its
  first frame (the file is opened in a worker after it); "first data" is the first frame
  that shows the heatmap of the opened file. Times are from the interpreter's first line.
- key to screen: once the app has settled after the previous key (Textual's pilot pause:
  no message pending), a key event is sent to the running app (headless, as the pilot
  does) and the clock stops at the first screen refresh after its effect (cursor moved,
  tab shown); "to ... shown" waits for the refresh after the worker's answer (candidates
  sorted and listed, a new selection analysed). Segments are not written to a terminal.
- burst: 50 cursor moves sent at once, with no settling between them, then the time
  until the last cell and its candidates are on screen; then `q`, until the app exits.
- CPU time per key: the process's CPU time (UI thread and workers) from the key to the
  repaint; on a loaded machine the wall-clock latencies grow, this does not.

Usage: .venv/bin/python benchmarks/tui.py [RESULTS.h5] [--size 120x40] [--repeat 3]
(default: the bundled data/results/sc60m13-inference.h5). Targets on an idle machine:
under 0.1 s per key, under 1 s to the first frame.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from qcapprox.paths import BUNDLED_RESULTS

DEFAULT = BUNDLED_RESULTS

FIRST_FRAME = """
import time
T0 = time.perf_counter()
import json, sys
from pathlib import Path
from qcapprox.tui import app
imported = time.perf_counter() - T0
marks = {}

class Timed(app.QcapproxApp):
    def on_mount(self):
        super().on_mount()
        self.call_after_refresh(lambda: marks.setdefault("first_frame", time.perf_counter() - T0))

    def _apply(self, view):
        super()._apply(view)
        self.call_after_refresh(self._data_shown)

    def _data_shown(self):
        marks.setdefault("first_data", time.perf_counter() - T0)
        self.exit()

Timed(sys.argv[1]).run(headless=True, size=(120, 40))
print(json.dumps({"import": imported, **marks}))
"""


def first_frame(path: Path) -> dict[str, float]:
    """Times (s) from a fresh interpreter's first line: import, first frame, first data."""
    out = subprocess.run(
        [sys.executable, "-c", FIRST_FRAME, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _latencies(path: Path, size: tuple[int, int], rounds: int) -> dict[str, list[float]]:
    """Key-to-screen times (s) of every key and action, `rounds` presses each at least."""
    from textual import events
    from textual.command import CommandPalette

    from qcapprox.tui.app import QcapproxApp
    from qcapprox.tui.panes import CandidatesPane, LimitsPane, RobustnessPane

    app = QcapproxApp(path)
    times: dict[str, list[float]] = {}
    cpu_times: list[float] = []
    shown: dict[str, object] = {}

    def record(pane, name: str) -> None:
        """Note the request a pane's list answers when it reaches the screen."""
        show = pane.show_rows

        def recorded(request, rows) -> None:
            show(request, rows)
            shown[name] = request

        pane.show_rows = recorded

    def send(key: str) -> None:
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        app._driver.send_message(event)

    async def until(done) -> None:
        while not done():
            await asyncio.sleep(0.0005)

    async def repainted() -> float:
        """The time of the next screen refresh (Textual's call_after_refresh)."""
        stamp: list[float] = []
        app.call_after_refresh(lambda: stamp.append(time.perf_counter()))
        await until(lambda: stamp)
        return stamp[0]

    def lists_shown() -> bool:
        """The lists on screen answer the current selection (Candidates, Limits preview)."""
        cand, limits = app.pane(CandidatesPane), app.pane(LimitsPane)
        ok = not cand.shown or shown.get("candidates") == cand.request()
        preview = limits.shown and limits.preview.display
        return ok and (not preview or shown.get("preview") == (limits.view, limits.cell))

    def analysed() -> bool:
        view = app.view
        return view is not None and view.key == app.selection_key() and lists_shown()

    async def timed(name: str, keys: list[str], changed) -> None:
        """Press `keys` back to back on the settled app; the clock stops at the first repaint
        after `changed`."""
        await pilot.pause()
        start, cpu = time.perf_counter(), time.process_time()
        for key in keys:
            send(key)
        await until(changed)
        times.setdefault(name, []).append(await repainted() - start)
        if "burst" not in name:  # CPU of the process (UI and workers): load does not inflate it
            cpu_times.append(time.process_time() - cpu)
        await app.workers.wait_for_complete()

    async with app.run_test(size=size) as pilot:
        record(app.pane(CandidatesPane), "candidates")
        record(app.pane(LimitsPane), "preview")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await until(analysed)
        for key in (["down"] * 3 + ["left"] * 3 + ["up"] * 3 + ["right"] * 3) * max(1, rounds // 3):
            before = app.cell
            await timed("heatmap move, to summary (and preview) shown", [key],
                        lambda b=before: app.cell != b and lists_shown())  # fmt: skip
        for _ in range(rounds):
            for k, pane in enumerate(app.panes.values()):
                await timed(f"tab {k + 1} {pane.TITLE}", [str(k + 1)],
                            lambda t=pane.TAB: app.active_tab() == t and lists_shown())  # fmt: skip
        ranking = app.pane(RobustnessPane)
        before = app.selection_key()
        await timed("d and 7, to families ranked", ["d", "7"],
                    lambda: app.selection_key() != before and analysed()
                    and ranking.key == ranking.request(app.view))  # fmt: skip
        before = app.selection_key()
        await timed("d again and 1, to new analysis shown", ["d", "1"],
                    lambda: app.selection_key() != before and analysed())  # fmt: skip
        await timed("tab 2 Candidates, to list shown", ["2"], lists_shown)
        table = app.pane(CandidatesPane).table
        for key in ["down"] * rounds + ["pagedown"] * rounds:
            before = table.cursor_row
            if before >= table.row_count - 1:
                continue  # the key would not move the cursor: nothing to wait for
            await timed("table move", [key], lambda b=before: table.cursor_row != b)
        candidates = app.pane(CandidatesPane)
        for key in ("s", "v") * rounds:
            before = candidates.request()
            await timed("sort or set, to list shown", [key],
                        lambda b=before: candidates.request() != b and lists_shown())  # fmt: skip
        await timed("tab 1", ["1"], lambda: app.active_tab() == "limits")
        for _ in range(rounds):
            await timed("Ctrl-P, palette open", ["ctrl+p"],
                        lambda: isinstance(app.screen, CommandPalette))  # fmt: skip
            await timed("escape, palette closed", ["escape"],
                        lambda: not isinstance(app.screen, CommandPalette))  # fmt: skip
        for k in range(rounds):
            value = f"0.0{k + 1}"
            await timed("t, field open", ["t"], lambda: app.screen is not app.screen_stack[0])
            await timed("threshold typed + enter, to new analysis shown", [*value, "enter"],
                        lambda v=float(value): app.threshold == v and analysed())  # fmt: skip
        for key in ["b"] * rounds + ["d"] * rounds:
            before = app.selection_key()
            await timed("b or d, to new analysis shown", [key],
                        lambda b=before: app.selection_key() != b and analysed())  # fmt: skip
        await timed("tab 3 Compare", ["3"], lambda: app.active_tab() == "compare")
        for _ in range(rounds):
            before = app.selection_key()
            await timed("o (Compare's other family), to maps shown", ["o"],
                        lambda b=before: app.selection_key() != b and analysed())  # fmt: skip
        # burst: 50 moves sent at once; until the last selection and its lists show
        await timed("tab 1", ["1"], lambda: app.active_tab() == "limits")
        moves = ["down", "right", "up", "left", "down"] * 10
        cell = app.cell
        for key in moves:
            di, dj = {"down": (1, 0), "up": (-1, 0), "left": (0, -1), "right": (0, 1)}[key]
            cell = (min(max(cell[0] + di, 0), 12), min(max(cell[1] + dj, 0), 12))
        await timed("burst of 50 moves, to last cell and lists", moves,
                    lambda: app.cell == cell and lists_shown())  # fmt: skip
        start = time.perf_counter()
        send("q")
        await until(lambda: app.return_code is not None)
        times["q, to app exit"] = [time.perf_counter() - start]
    times["CPU time per key (process), all single keys"] = cpu_times
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--size", default="120x40", help="terminal size, e.g. 80x24")
    parser.add_argument("--repeat", type=int, default=3, help="first-frame runs")
    parser.add_argument("--rounds", type=int, default=5, help="presses of each key")
    opts = parser.parse_args()
    size = tuple(int(x) for x in opts.size.split("x"))
    print(f"results: {opts.results}  terminal {opts.size}")
    runs = [first_frame(opts.results) for _ in range(opts.repeat)]
    for name in ("import", "first_frame", "first_data"):
        values = [r[name] for r in runs]
        print(
            f"{name:>12}: median {statistics.median(values):.3f} s, max {max(values):.3f} s "
            f"({len(values)} fresh interpreters)"
        )
    times = asyncio.run(_latencies(opts.results, size, opts.rounds))
    keys = [
        t for name, ts in times.items() if "burst" not in name and "CPU" not in name for t in ts
    ]
    for name, values in times.items():
        print(
            f"{name:>52}: median {1000 * statistics.median(values):7.1f} ms, "
            f"max {1000 * max(values):7.1f} ms (n={len(values)})"
        )
    print(
        f"{'key to screen, every key and action':>52}: median "
        f"{1000 * statistics.median(keys):7.1f} ms, max {1000 * max(keys):7.1f} ms"
    )


if __name__ == "__main__":
    main()
