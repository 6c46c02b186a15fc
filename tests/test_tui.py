"""The Textual results browser, driven by its pilot: the numbers on screen are checked
against sets recomputed here with Python, plus snapshot tests at 80x24 and 120x36.
"""

from __future__ import annotations

import asyncio
import functools
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.io import read
from resultsdata import build_store
from textual.widgets import DataTable, TabbedContent

from qcapprox import analysis
from qcapprox.errors import StoreError
from qcapprox.results import LIMITS, Results, bundle
from qcapprox.tui.app import MAX_ROWS, QcapproxApp
from qcapprox.tui.format import composition_strings, number, occupancy_strings
from qcapprox.tui.heatmap import Heatmap


def sync(test):
    """Run an async pilot test with asyncio (no pytest async plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


def below(pred: np.ndarray, threshold: float = 0.0) -> list[set[int]]:
    return [set(np.flatnonzero(pred[k] < threshold).tolist()) for k in range(len(pred))]


def screen_text(app: QcapproxApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def table_rows(table: DataTable) -> list[list[str]]:
    return [[str(cell).strip() for cell in table.get_row_at(r)] for r in range(table.row_count)]


# ---------------------------------------------------------------- limits heatmap
@sync
async def test_heatmap_numbers_equal_sets(results_path: Path, res: Results) -> None:
    app = QcapproxApp(results_path)
    sets = below(res.predictions("Pt", "rf"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "Pt · rf · below +0.000 eV/atom · CHGNet stand-in labels" in text
        assert "DFT" not in text
        lines = text.splitlines()
        header = next(
            k for k, line in enumerate(lines) if re.fullmatch(r"\s+0\s+2\s+4.*24\s*", line)
        )
        for i in range(13):
            cells = lines[header + 1 + i].split()
            assert int(cells[0]) == LIMITS[i]
            assert [int(c) for c in cells[1:14]] == [len(sets[i] & sets[j]) for j in range(13)]
        n_row = lines[header + 14].split()
        assert n_row[0] == "n" and [int(c) for c in n_row[1:14]] == [len(s) for s in sets]
        rec_row = lines[header + 16].split()
        expected = [len(s & sets[12]) / len(sets[12]) for s in sets]
        assert rec_row[1:14] == [number(r, "fraction", 6) for r in expected]
        # the cursor starts on (limit 0, limit 24); move it to (limit 4, limit 8)
        await press(pilot, "down", "down", "home")
        assert app.cell == (0, 0)
        await press(pilot, "down", "down", "right", "right", "right", "right")
        i, j = app.cell
        assert (LIMITS[i], LIMITS[j]) == (4, 8)
        both = len(sets[i] & sets[j])
        summary = str(app.query_one("#cell-summary").render())
        only_i, only_j = len(sets[i] - sets[j]), len(sets[j] - sets[i])
        assert f"i=4 j=8 │ both {both} │ only i {only_i} │ only j {only_j}" in summary
        assert f"Jaccard {both / len(sets[i] | sets[j]):.3f}" in summary
        assert f"({100 * both / len(sets[i]):.1f}% in both)" in summary
        # metrics: % of i, % of j, Jaccard: the heatmap holds the analysis matrices
        heat = app.query_one("#heatmap", Heatmap)
        ov = analysis.overlap(analysis.below_hull(res.predictions("Pt", "rf")))
        for metric in ("pct_i", "pct_j", "jaccard", "count"):
            await press(pilot, "m")
            assert app.metric == metric
            np.testing.assert_array_equal(heat.matrix, ov.matrix(metric))
        assert heat.value() == both


@sync
async def test_candidates_sets_sort_filter_detail_export(
    results_path: Path, res: Results, tmp_path: Path
) -> None:
    app = QcapproxApp(results_path, export_dir=tmp_path)
    pred = res.predictions("Pt", "rf")
    sets = below(pred)
    ids = res.ids("Pt")
    comp = composition_strings(res.composition("Pt"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "right", "down", "enter")  # cell (limit 2, limit 24) -> candidates
        assert app.query_one(TabbedContent).active == "candidates"
        i, j = app.cell
        assert (LIMITS[i], LIMITS[j]) == (2, 24)
        table = app.query_one("#cand-table", DataTable)
        expected = {
            "both": sets[i] & sets[j],
            "only_i": sets[i] - sets[j],
            "only_j": sets[j] - sets[i],
        }
        for name in ("both", "only_i", "only_j"):
            assert app.cell_set == name
            rows = table_rows(table)
            assert len(rows) == min(len(expected[name]), MAX_ROWS)
            assert {int(r[0]) for r in rows} == {int(ids[c]) for c in expected[name]}
            energies = [float(r[3]) if r[3] != "-" else np.inf for r in rows]
            assert energies == sorted(energies)  # default: E at i, lowest first
            title = str(app.query_one("#cand-title").render())
            assert f"({len(expected[name])})" in title
            await press(pilot, "v")
        assert app.cell_set == "both"
        # one row, every column, against the store
        first = table_rows(table)[0]
        c = int(np.flatnonzero(ids == int(first[0]))[0])
        a4 = occupancy_strings(res.occupancy("Pt")[c : c + 1, :12])[0]
        assert first[1:] == [
            comp[c],
            a4,
            f"{pred[i, c]:.4f}",
            f"{pred[j, c]:.4f}",
            str(res.multiplicity("Pt")[c]),
        ]
        # sort by multiplicity (largest first): E@i, E@j, mult
        await press(pilot, "s", "s")
        assert app.sort == "mult"
        mults = [int(r[5]) for r in table_rows(table)]
        assert mults == sorted(mults, reverse=True)
        # filter by composition
        await press(pilot, "slash", "M", "9")
        assert app.query_text == "M9"
        rows = table_rows(table)
        want = {int(ids[x]) for x in expected["both"] if comp[x].split()[1] == "M9"}
        assert {int(r[0]) for r in rows} == want and want
        await press(pilot, "escape")
        assert app.query_text == "" and len(table_rows(table)) == len(expected["both"])
        # detail of the first row: predictions at all limits of both backbones
        table.move_cursor(row=0)
        await press(pilot, "enter")
        assert app.query_one(TabbedContent).active == "detail"
        row = app.detail_row
        config_id = int(ids[row])
        detail = table_rows(app.query_one("#detail-table", DataTable))
        allegro = res.predictions("Pt", "allegro")
        for k, cells in enumerate(detail):
            assert cells[0] == str(LIMITS[k])
            assert cells[1].rstrip("*") == f"{pred[k, row]:.4f}"
            assert cells[2].rstrip("*") == ("-" if k == 5 else f"{allegro[k, row]:.4f}")
            assert cells[1].endswith("*") == bool(pred[k, row] < 0)
        title = str(app.query_one("#detail-title").render())
        assert f"id {config_id}" in title and "CHGNet stand-in labels" in title
        await press(pilot, "c", "p", "x")
        reference = res.parent("Pt").decorate(res.occupancy("Pt")[row])
        for suffix, fmt in (("cif", "cif"), ("POSCAR", "vasp"), ("extxyz", "extxyz")):
            path = tmp_path / f"Pt-{config_id}.{suffix}"
            atoms = read(path, format=fmt)
            assert atoms.get_chemical_formula() == reference.get_chemical_formula()
            np.testing.assert_allclose(atoms.cell[:], reference.cell[:], atol=1e-6)
        assert read(tmp_path / f"Pt-{config_id}.extxyz").info["config_id"] == config_id


@sync
async def test_dopant_backbone_threshold_and_compare(results_path: Path, res: Results) -> None:
    app = QcapproxApp(results_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "d")
        assert app.dopant == "Pd"
        await press(pilot, "t", "backspace", "0", ".", "0", "1", "enter")
        assert app.threshold == 0.01
        assert "Pd · rf · below +0.010 eV/atom" in screen_text(app)
        rf = below(res.predictions("Pd", "rf"), 0.01)
        al = below(res.predictions("Pd", "allegro"), 0.01)
        heat = app.query_one("#heatmap", Heatmap)
        np.testing.assert_array_equal(heat.extra[0][1], [len(s) for s in rf])
        # compare: the same-limit table of rf vs allegro
        await press(pilot, "3")
        assert app.query_one(TabbedContent).active == "compare"
        rows = table_rows(app.query_one("#agreement", DataTable))
        for k, (lim, both, jac) in enumerate(rows):
            assert lim == str(LIMITS[k])
            if k == 5:  # allegro has no limit 10
                assert both == "-" and jac == "-"
                continue
            inter = len(rf[k] & al[k])
            assert int(both) == inter
            assert jac == number(inter / len(rf[k] | al[k]), "fraction", 4)
        i, j = app.cell
        summary = str(app.query_one("#compare-summary").render())
        assert f"rf {len(rf[i] & rf[j])} · allegro {len(al[i] & al[j])}" in summary
        # the allegro heatmap: row and column of limit 10 are missing
        assert np.isnan(app.query_one("#cmp-b", Heatmap).matrix[5]).all()
        # switch the primary backbone
        await press(pilot, "b")
        assert (app.backbone, app.other) == ("allegro", "rf")
        await press(pilot, "1")
        text = screen_text(app)
        assert "Pd · allegro · below +0.010" in text
        assert " 10    -    -    -" in text  # limit 10 of allegro: no predictions


@sync
async def test_robust_and_test_tabs(results_path: Path, res: Results) -> None:
    app = QcapproxApp(results_path)
    pred = res.predictions("Pt", "rf")
    mult = res.multiplicity("Pt")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "4", "k")
        assert app.k == 12
        n_below = (pred < 0).sum(axis=0)
        pick = set(np.flatnonzero(n_below >= 12).tolist())
        rows = table_rows(app.query_one("#robust-table", DataTable))
        assert {int(r[0]) for r in rows} == {int(res.ids("Pt")[c]) for c in pick}
        counts = [int(r[3]) for r in rows]
        assert counts == sorted(counts, reverse=True)
        title = str(app.query_one("#robust-title").render())
        assert f"{len(pick)} configurations (Σ multiplicity {int(mult[list(pick)].sum())})" in title
        # both backbones
        await press(pilot, "a")
        assert app.scope == "both"
        al = res.predictions("Pt", "allegro")
        pick2 = pick & set(np.flatnonzero((al < 0).sum(axis=0) >= 12).tolist())
        rows = table_rows(app.query_one("#robust-table", DataTable))
        assert {int(r[0]) for r in rows} == {int(res.ids("Pt")[c]) for c in pick2}
        await press(pilot, "6")
        m = res.metrics("Pt", "rf")
        rmse_rows = table_rows(app.query_one("#rmse-table", DataTable))
        manual = [np.sqrt(np.mean((p - m.test_target) ** 2)) for p in m.test_predictions]
        assert [r[1] for r in rmse_rows] == [f"{x:.4f}" for x in manual]
        sim = app.query_one("#similarity", Heatmap).matrix
        assert sim[0, 12] == pytest.approx(1 - abs(manual[0] - manual[12]) / m.test_target.mean())


@sync
async def test_resize_and_no_color(results_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = QcapproxApp(results_path)
    assert app.no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        heat = app.query_one("#heatmap", Heatmap)
        assert heat.cell_width() == 5
        for size in ((60, 20), (30, 8), (200, 60), (80, 24)):
            await pilot.resize_terminal(*size)
            await settle(pilot)
            assert heat.cell_width() == min(7, max(2, (heat.content_size.width - 4) // 13))
            if size[0] >= 60:  # a 30x8 terminal cuts the top line, but nothing breaks
                assert "CHGNet stand-in labels" in screen_text(app)
        await press(pilot, "3")
        text = screen_text(app)
        assert "▓" in text or "█" in text  # shade glyphs: readable without colour


@sync
async def test_one_backbone_without_metrics(tmp_path: Path) -> None:
    store = build_store(tmp_path, "Rh", {"rf": ()})
    with h5py.File(store, "r+") as handle:
        del handle["metrics"]
    app = QcapproxApp(bundle({"Rh": store}, tmp_path / "rh.h5"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.other is None
        await press(pilot, "3")
        assert "Compare needs two backbones" in screen_text(app)
        await press(pilot, "4", "a")
        assert app.scope == "backbone"
        await press(pilot, "6")
        assert "no test metrics for rf (Rh) in this file" in screen_text(app)
        await press(pilot, "5")
        await press(pilot, "c")  # nothing chosen yet: a message, no file
        assert not list(Path.cwd().glob("Rh-*.cif"))


def test_refuses_a_store(results_path: Path) -> None:
    with pytest.raises(StoreError, match="not a qcapprox results file"):
        QcapproxApp(results_path.parent / "sc60pt13.h5")


# ---------------------------------------------------------------- snapshots
@pytest.fixture
def snapshot_app(results_path: Path, monkeypatch) -> QcapproxApp:
    monkeypatch.delenv("NO_COLOR", raising=False)  # snapshots are taken in colour
    return QcapproxApp(results_path)


def test_snapshot_limits_80x24(snap_compare, snapshot_app: QcapproxApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=settle)


def test_snapshot_candidates_80x24(snap_compare, snapshot_app: QcapproxApp) -> None:
    async def before(pilot) -> None:
        await settle(pilot)
        await press(pilot, "left", "up", "enter")

    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=before)


def test_snapshot_compare_120x36(snap_compare, snapshot_app: QcapproxApp) -> None:
    async def before(pilot) -> None:
        await settle(pilot)
        await press(pilot, "3", "m", "m", "m")

    assert snap_compare(snapshot_app, terminal_size=(120, 36), run_before=before)
