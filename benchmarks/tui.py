"""Terminal UI speed: first-frame time and key-to-screen latency (median, max).

- first frame: a fresh interpreter imports the UI, opens the app headless and draws its
  first frame (the file is opened in a worker after it); "first data" is the first frame
  that shows the heatmap of the opened file. Times are from the interpreter's first line.
- key to screen: a key event is sent to the running app (headless, as Textual's pilot
  does) and the clock stops at the first screen refresh after its effect (cursor moved,
  tab shown); "to ... shown" waits for the refresh after the worker's answer (candidates
  sorted and listed, a new selection analysed). Segments are not written to a terminal.
- burst: 50 cursor moves sent at once, then the time until the last cell and its
  candidates are on screen; then `q`, until the app exits.
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

from qcapprox.paths import REPO_ROOT

DEFAULT = REPO_ROOT / "data" / "results" / "sc60m13-inference.h5"

FIRST_FRAME = """
import time
T0 = time.perf_counter()
import json, sys
from pathlib import Path
from qcapprox.tui import app
imported = time.perf_counter() - T0
marks = {}

class Timed(app.QcapproxApp):
    CSS_PATH = Path(app.__file__).with_name(app.QcapproxApp.CSS_PATH)

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


def _bench_app(path: Path):
    """The app, recording which candidate list is on screen (to know when work is shown)."""
    from qcapprox.tui import app

    class Bench(app.QcapproxApp):
        CSS_PATH = Path(app.__file__).with_name(app.QcapproxApp.CSS_PATH)
        shown: tuple | None = None

        def _apply_candidates(self, request: tuple, rows) -> None:
            super()._apply_candidates(request, rows)
            if request == self._candidates_request():
                self.shown = request

    return Bench(path, threshold=0.05)


async def _latencies(path: Path, size: tuple[int, int]) -> dict[str, list[float]]:
    from textual import events

    from qcapprox.tui.table import RowTable

    app = _bench_app(path)
    times: dict[str, list[float]] = {}
    cpu_times: list[float] = []

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

    def shown() -> bool:
        """The cell's candidates are on screen (or not shown at all: Limits tab, no preview)."""
        listed = app._active_tab() == "candidates" or app.query_one("#preview").display
        return app.shown == app._candidates_request() or not listed

    async def timed(name: str, keys: list[str], changed) -> None:
        """Press `keys` back to back; the clock stops at the first repaint after `changed`."""
        start, cpu = time.perf_counter(), time.process_time()
        for key in keys:
            send(key)
        await until(changed)
        times.setdefault(name, []).append(await repainted() - start)
        if "burst" not in name:  # CPU of the process (UI and workers): load does not inflate it
            cpu_times.append(time.process_time() - cpu)

    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await until(shown)
        for key in ["down"] * 6 + ["left"] * 6 + ["up"] * 6 + ["right"] * 6:
            before = app.cell
            await timed("heatmap move", [key], lambda b=before: app.cell != b)
            await app.workers.wait_for_complete()
        for key in ["down", "left"] * 6:
            before = app.cell
            await timed(
                "heatmap move, to candidates shown",
                [key],
                lambda b=before: app.cell != b and shown(),
            )
        await timed(
            "tab 2, to candidates shown",
            ["2"],
            lambda: app._active_tab() == "candidates" and shown(),
        )
        await app.workers.wait_for_complete()  # no list arrives (and resets the cursor) later
        table = app.query_one("#cand-table", RowTable)
        for key in ["down"] * 10 + ["pagedown"] * 4 + ["end", "home"]:
            before = table.cursor_row
            if before == (0 if key == "home" else table.row_count - 1):
                continue  # the key would not move the cursor: nothing to wait for
            await timed("table move", [key], lambda b=before: table.cursor_row != b)
        for key in ("s", "v", "v", "v"):
            before = app._candidates_request()
            await timed(
                "sort or set, to candidates shown",
                [key],
                lambda b=before: app._candidates_request() != b and shown(),
            )
        await timed("tab 1", ["1"], lambda: app._active_tab() == "limits")
        for key in ["b"] * 4 + ["d"]:
            before = app.view.key

            def analysed(b=before) -> bool:
                return app.view.key != b and app.view.key == app.selection_key() and shown()

            await timed("backbone or dopant, to new analysis shown", [key], analysed)
        # burst: 50 moves sent at once; until the last selection and its candidates show
        moves = ["down", "right", "up", "left", "down"] * 10
        cell = app.cell
        for key in moves:
            di, dj = {"down": (1, 0), "up": (-1, 0), "left": (0, -1), "right": (0, 1)}[key]
            cell = (min(max(cell[0] + di, 0), 12), min(max(cell[1] + dj, 0), 12))
        await timed(
            "burst of 50 moves, to last cell and candidates",
            moves,
            lambda: app.cell == cell and shown(),
        )
        start = time.perf_counter()
        send("q")
        await until(lambda: app.return_code is not None)
        times["q after the burst, to app exit"] = [time.perf_counter() - start]
    times["CPU time per key (process), all single keys"] = cpu_times
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--size", default="120x40", help="terminal size, e.g. 80x24")
    parser.add_argument("--repeat", type=int, default=3, help="first-frame runs")
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
    times = asyncio.run(_latencies(opts.results, size))
    keys = [
        t for name, ts in times.items() if "shown" not in name and "burst" not in name for t in ts
    ]
    for name, values in times.items():
        print(
            f"{name:>52}: median {1000 * statistics.median(values):7.1f} ms, "
            f"max {1000 * max(values):7.1f} ms (n={len(values)})"
        )
    print(
        f"{'key to screen, single keys without work':>52}: median "
        f"{1000 * statistics.median(keys):7.1f} ms, max {1000 * max(keys):7.1f} ms"
    )


if __name__ == "__main__":
    main()
