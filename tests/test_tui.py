"""The Textual results browser, driven by its pilot: the numbers on screen are checked
against sets recomputed here with Python, plus snapshot tests at 60x20, 80x24, 120x40 and
200x50. Tests wait for events (pilot pauses, workers), never for time: speed is measured
in benchmarks/tui.py.
"""

from __future__ import annotations

import asyncio
import functools
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.io import read
from resultsdata import build_store
from textual.widgets import DataTable
from textual.widgets._footer import FooterKey

from qcapprox import analysis, datasets
from qcapprox.errors import StoreError
from qcapprox.results import KEPT, LIMITS, NOT_RELAXED, Results, bundle
from qcapprox.tui import format as tui_format
from qcapprox.tui.app import QcapproxApp
from qcapprox.tui.format import KNOWN_MARK, composition_strings, number, occupancy_strings
from qcapprox.tui.help import HelpScreen
from qcapprox.tui.panes import (
    CandidatesPane,
    ComparePane,
    DetailPane,
    LimitsPane,
    PicksPane,
    RmsePane,
    RobustnessPane,
)
from qcapprox.tui.table import RowTable
from qcapprox.tui.threshold import ThresholdScreen


def sync(test):
    """Run an async pilot test with asyncio (no pytest async plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


def below(pred: np.ndarray, threshold: float = 0.0) -> list[set[int]]:
    return [set(np.flatnonzero(pred[k] < threshold).tolist()) for k in range(len(pred))]


def screen_text(app: QcapproxApp) -> str:
    """The screen as plain text, from Textual's public SVG screenshot: every text run is
    clipped to its terminal line and starts at x = column * cell width."""
    runs = [
        (float(x), float(length), int(line), html.unescape(text).replace("\xa0", " "))
        for x, length, line, text in SVG_TEXT.findall(app.export_screenshot())
    ]
    cell = min(length / len(text) for _, length, _, text in runs if text)
    lines: dict[int, dict[int, str]] = {}
    for x, _, line, text in runs:
        start = round(x / cell)
        for k, char in enumerate(text):
            lines.setdefault(line, {})[start + k] = char
    return "\n".join(
        "".join(row.get(c, " ") for c in range(max(row, default=-1) + 1))
        for row in (lines.get(k, {}) for k in range(max(lines) + 1))
    )


SVG_TEXT = re.compile(
    r'<text [^>]*x="([\d.]+)"[^>]*textLength="([\d.]+)"'
    r'[^>]*clip-path="url\(#[\w-]*line-(\d+)\)"[^>]*>(.*?)</text>'
)


async def settle(pilot) -> None:
    """Until the workers' answers are on screen: their calls into the UI thread are
    processed (a worker's answer may start another worker: wait again until none runs,
    and until the app has taken down its busy indicator, which the workers' last state
    messages do), then the layout they change (one more pause) is refreshed."""
    await pilot.pause()
    while True:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        workers = pilot.app.workers
        if not any(not w.is_finished for w in workers) and not pilot.app.busy.display:
            break
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def table_rows(table: DataTable | RowTable) -> list[list[str]]:
    """The cells of every row (without the known-phase mark column)."""
    if isinstance(table, RowTable):
        skip = 1 if table.columns and table.columns[0].title == KNOWN_MARK else 0
        return [[c.strip() for c in table.row(r)[skip:]] for r in range(table.row_count)]
    return [[str(cell).strip() for cell in table.get_row_at(r)] for r in range(table.row_count)]


ID = -1  # the id is the last column of the candidate tables


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
        n = res.n_configs("Pt")
        pct_row = lines[header + 15].split()
        assert pct_row[1:14] == [number(100 * len(s) / n, "percent", 6) for s in sets]
        mult = res.multiplicity("Pt")
        sigma_row = lines[header + 16].split()
        assert [int(c) for c in sigma_row[1:14]] == [int(mult[list(s)].sum()) for s in sets]
        rec_row = lines[header + 17].split()
        expected = [len(s & sets[12]) / len(sets[12]) for s in sets]
        assert rec_row[1:14] == [number(r, "fraction", 6) for r in expected]
        # the cursor starts on (limit 0, limit 24); move it to (limit 4, limit 8)
        await press(pilot, "down", "down", "home")
        assert app.cell == (0, 0)
        await press(pilot, "down", "down", "right", "right", "right", "right")
        i, j = app.cell
        assert (LIMITS[i], LIMITS[j]) == (4, 8)
        both = len(sets[i] & sets[j])
        summary = str(app.pane(LimitsPane).summary.render())
        only_i, only_j = len(sets[i] - sets[j]), len(sets[j] - sets[i])
        assert f"i=4 j=8 │ both {both} │ only i {only_i} │ only j {only_j}" in summary
        assert f"Jaccard {both / len(sets[i] | sets[j]):.3f}" in summary
        pct_i, pct_j = 100 * both / len(sets[i]), 100 * both / len(sets[j])
        assert f"in both: {pct_i:.1f}% of Bi, {pct_j:.1f}% of Bj" in summary
        assert f"|Bi| {len(sets[i]):,} = {100 * len(sets[i]) / n:.1f}% of {n:,}" in summary
        expected_recall = len(sets[i] & sets[12]) / len(sets[12])
        assert f"recall {number(expected_recall, 'fraction', 5)}" in summary
        known = res.known_phase_row("Pt")  # the known Sc57Pt13 phase, its value and rank
        pred = res.predictions("Pt", "rf")
        assert f"known Sc57Pt13 (eV/atom): @i {pred[i, known]:+.3f} rank " in summary
        assert f"rank {int((pred[j] < pred[j, known]).sum()) + 1:,}" in summary
        # metrics: % of i, % of j, Jaccard: the heatmap holds the analysis matrices
        heat = app.pane(LimitsPane).heatmap
        ov = analysis.overlap(analysis.below_hull(res.predictions("Pt", "rf")))
        for metric in ("pct_i", "pct_j", "jaccard", "count"):
            await press(pilot, "m")
            assert app.pane(LimitsPane).metric == metric
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
    mult = res.multiplicity("Pt")
    comp = composition_strings(res.composition("Pt"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "right", "down", "enter")  # cell (limit 2, limit 24) -> candidates
        assert app.active_tab() == "candidates"
        i, j = app.cell
        assert (LIMITS[i], LIMITS[j]) == (2, 24)
        table = app.pane(CandidatesPane).table
        expected = {
            "both": sets[i] & sets[j],
            "only_i": sets[i] - sets[j],
            "only_j": sets[j] - sets[i],
        }
        for name in ("both", "only_i", "only_j"):
            assert app.pane(CandidatesPane).cell_set == name
            rows = table_rows(table)
            assert len(rows) == len(expected[name])
            assert {int(r[ID]) for r in rows} == {int(ids[c]) for c in expected[name]}
            energies = [float(r[2]) if r[2] != "-" else np.inf for r in rows]
            assert energies == sorted(energies)  # default: E at i, lowest first
            title = str(app.pane(CandidatesPane).heading.render())
            assert f"({len(expected[name])})" in title
            await press(pilot, "v")
        assert app.pane(CandidatesPane).cell_set == "both"
        # one row, every column, against the store
        first = table_rows(table)[0]
        c = int(np.flatnonzero(ids == int(first[ID]))[0])
        a4 = occupancy_strings(res.occupancy("Pt")[c : c + 1, :12])[0]
        assert first[:ID] == [
            comp[c],
            a4,
            f"{pred[i, c]:.4f}",
            f"{pred[j, c]:.4f}",
            str(res.multiplicity("Pt")[c]),
        ]
        # sort by multiplicity (largest first): E@i, E@j, mult
        await press(pilot, "s", "s")
        assert app.pane(CandidatesPane).sort == "mult"
        mults = [int(r[4]) for r in table_rows(table)]
        assert mults == sorted(mults, reverse=True)
        # filter by composition
        await press(pilot, "slash", "M", "9")
        assert app.pane(CandidatesPane).query_text == "M9"
        rows = table_rows(table)
        want = {int(ids[x]) for x in expected["both"] if comp[x].split()[1] == "M9"}
        assert {int(r[ID]) for r in rows} == want and want
        await press(pilot, "escape")
        assert app.pane(CandidatesPane).query_text == ""
        assert len(table_rows(table)) == len(expected["both"])
        # detail of the first row: predictions at all limits of both backbones
        # export the listed set: one extxyz file, one CIF per configuration
        listed = [int(r[ID]) for r in table_rows(table)]
        await press(pilot, "x")
        stem = "Pt-rf-i2-j24-both"
        frames = read(tmp_path / f"{stem}.extxyz", index=":")
        assert [f.info["config_id"] for f in frames] == listed
        for frame in frames[:5]:
            c = int(np.flatnonzero(ids == frame.info["config_id"])[0])
            for k, limit in enumerate(LIMITS):
                assert frame.info[f"e_above_hull_rf_limit-{limit:02d}"] == pytest.approx(pred[k, c])
            assert "e_above_hull_allegro_limit-10" not in frame.info  # allegro has no limit 10
        notice = str(app.notice.render())
        assert f"wrote {tmp_path.resolve() / stem}.extxyz" in notice.replace("\n", "")
        await press(pilot, "c")
        assert len(list((tmp_path / stem).glob("Pt-*.cif"))) == len(listed)
        # detail of the first row: predictions at all limits of both backbones, their spread
        table.move_cursor(0)
        await press(pilot, "enter")
        assert app.active_tab() == "detail"
        row = app.pane(DetailPane).row
        config_id = int(ids[row])
        detail = table_rows(app.pane(DetailPane).table)
        allegro = res.predictions("Pt", "allegro")
        for k, cells in enumerate(detail[:13]):
            assert cells[0] == str(LIMITS[k])
            assert cells[1].rstrip("*") == f"{pred[k, row]:.4f}"
            assert cells[2].rstrip("*") == ("-" if k == 5 else f"{allegro[k, row]:.4f}")
            assert cells[1].endswith("*") == bool(pred[k, row] < 0)
            spread = 0.0 if k == 5 else abs(pred[k, row] - allegro[k, row])  # one value at 10
            assert cells[3] == f"{spread:.4f}"
            assert cells[4] == f"{int((pred[k] < pred[k, row]).sum()) + 1:,}"  # rank in rf
        assert [r[0] for r in detail[13:]] == ["min", "max", "spread"]
        assert detail[15][1] == f"{np.ptp(pred[:, row]):.4f}"
        reference = res.parent("Pt").decorate(res.occupancy("Pt")[row])
        symbols = reference.get_chemical_symbols()
        formula = f"Sc{symbols.count('Sc')}Pt{symbols.count('Pt')}"
        detail_pane = app.pane(DetailPane)
        title = f"{detail_pane.heading.render()}\n{detail_pane.notes.render()}"
        assert f"id {config_id}" in title and "CHGNet stand-in labels" in title
        assert f"{formula} per cell" in title and f"multiplicity {mult[row]}" in title
        await press(pilot, "c", "p", "x")
        for suffix, fmt in (("cif", "cif"), ("POSCAR", "vasp"), ("extxyz", "extxyz")):
            path = tmp_path / f"Pt-{config_id}.{suffix}"
            atoms = read(path, format=fmt)
            assert atoms.get_chemical_formula() == reference.get_chemical_formula()
            np.testing.assert_allclose(atoms.cell[:], reference.cell[:], atol=1e-6)
            text = path.read_text()
            assert "CHGNet stand-in labels" in text
            if suffix != "extxyz":  # predictions in the comment lines
                assert f"{pred[12, row]:.5f}" in text
        info = read(tmp_path / f"Pt-{config_id}.extxyz").info
        assert info["config_id"] == config_id
        assert info["e_above_hull_rf_limit-24"] == pytest.approx(pred[12, row])
        notice = str(app.notice.render()).replace("\n", "")
        assert f"wrote {tmp_path.resolve()}/Pt-{config_id}.extxyz" in notice


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
        heat = app.pane(LimitsPane).heatmap
        np.testing.assert_array_equal(heat.extra[0][1], [len(s) for s in rf])
        # compare: the same-limit table of rf vs allegro
        await press(pilot, "3")
        assert app.active_tab() == "compare"
        rows = table_rows(app.pane(ComparePane).agreement)
        for k, (lim, both, jac) in enumerate(rows):
            assert lim == str(LIMITS[k])
            if k == 5:  # allegro has no limit 10
                assert both == "-" and jac == "-"
                continue
            inter = len(rf[k] & al[k])
            assert int(both) == inter
            assert jac == number(inter / len(rf[k] | al[k]), "fraction", 4)
        i, j = app.cell
        summary = str(app.pane(ComparePane).summary.render())
        assert f"rf {len(rf[i] & rf[j])} · allegro {len(al[i] & al[j])}" in summary
        # the allegro heatmap: row and column of limit 10 are missing
        assert np.isnan(app.pane(ComparePane).maps[1].matrix[5]).all()
        # switch the primary backbone
        await press(pilot, "b")
        assert (app.backbone, app.other) == ("allegro", "rf")
        await press(pilot, "1")
        text = screen_text(app)
        assert "Pd · allegro · below +0.010" in text
        assert " 10    -    -    -" in text  # limit 10 of allegro: no predictions


@sync
async def test_threshold_typing_replaces_and_non_finite_is_refused(results_path: Path) -> None:
    """The threshold field's value is selected when it opens, so typing replaces it; a value
    that is not finite (1e999 overflows to inf; NaN) is refused with a notice saying why,
    the field stays open and the threshold stays."""
    app = QcapproxApp(results_path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(pilot)
        await press(pilot, "t", "0", ".", "0", "2", "enter")  # no backspace before typing
        assert app.threshold == 0.02
        await press(pilot, "t", "1", "e", "9", "9", "9", "enter")
        assert isinstance(app.screen, ThresholdScreen)
        assert "'1e999' is not a finite energy" in screen_text(app)
        app.screen.field.value = "nan"  # no key types it
        await press(pilot, "enter")
        assert isinstance(app.screen, ThresholdScreen)
        assert "'nan' is not a finite energy" in screen_text(app)
        for entry in ("", "abc", "inf"):  # empty, text (pasted), infinite: refused, shown
            app.screen.field.value = entry
            await press(pilot, "enter")
            assert isinstance(app.screen, ThresholdScreen)
            error = app.screen.error
            assert error.display and "is not a" in str(error.render()), entry
        await press(pilot, "escape")
        assert not isinstance(app.screen, ThresholdScreen)
        assert app.threshold == 0.02
        assert "below +0.020 eV/atom" in screen_text(app)


@sync
async def test_robust_and_test_tabs(results_path: Path, res: Results) -> None:
    app = QcapproxApp(results_path)
    pred = res.predictions("Pt", "rf")
    mult = res.multiplicity("Pt")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "4", "k")
        assert app.pane(PicksPane).k == 12
        n_below = (pred < 0).sum(axis=0)
        pick = set(np.flatnonzero(n_below >= 12).tolist())
        rows = table_rows(app.pane(PicksPane).table)
        assert {int(r[ID]) for r in rows} == {int(res.ids("Pt")[c]) for c in pick}
        counts = [int(r[2]) for r in rows]
        assert counts == sorted(counts, reverse=True)
        title = str(app.pane(PicksPane).heading.render())
        weight = int(mult[list(pick)].sum())
        assert f"{len(pick)} configurations (Σ multiplicity {weight:,})" in title
        # both backbones
        await press(pilot, "a")
        assert app.pane(PicksPane).scope == "both"
        al = res.predictions("Pt", "allegro")
        pick2 = pick & set(np.flatnonzero((al < 0).sum(axis=0) >= 12).tolist())
        rows = table_rows(app.pane(PicksPane).table)
        assert {int(r[ID]) for r in rows} == {int(res.ids("Pt")[c]) for c in pick2}
        await press(pilot, "6")
        m = res.metrics("Pt", "rf")
        rmse_rows = table_rows(app.pane(RmsePane).table)
        manual = [np.sqrt(np.mean((p - m.test_target) ** 2)) for p in m.test_predictions]
        assert [r[1] for r in rmse_rows] == [f"{x:.4f}" for x in manual]
        assert [r[2] for r in rmse_rows] == [f"{abs(x - manual[12]):.4f}" for x in manual]
        heat = app.pane(RmsePane).heatmap
        assert heat.matrix[0, 12] == pytest.approx(
            1 - abs(manual[0] - manual[12]) / m.test_target.mean()
        )
        await press(pilot, "m")  # the same comparison in eV/atom
        assert heat.matrix[0, 12] == pytest.approx(abs(manual[0] - manual[12]))
        assert "|ΔRMSE|" in screen_text(app)


@sync
async def test_refuses_a_store(results_path: Path) -> None:
    app = QcapproxApp(results_path.parent / "sc60pt13.h5")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
    assert isinstance(app.load_error, StoreError)
    assert "not a qcapprox results file" in str(app.load_error)
    assert app.return_code == 2


def shifted_results(results_path: Path, tmp_path: Path, shift: float) -> Path:
    """A copy of the results file with every Pt prediction raised by `shift` eV/atom."""
    path = tmp_path / "shifted.h5"
    shutil.copyfile(results_path, path)
    with h5py.File(path, "r+") as handle:
        for family in handle["Pt/predictions"].values():
            for dataset in family.values():
                dataset[...] = dataset[...] + shift
    return path


@sync
async def test_opening_threshold(results_path: Path, tmp_path: Path) -> None:
    """No threshold given: a family with predictions below 0 opens at 0; one without opens
    at the slightly positive threshold of its label set, and the status line says so; a
    given threshold is used as given."""
    app = QcapproxApp(results_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.view.threshold == 0.0 and app.view.opening
        assert "below +0.000 eV/atom · CHGNet" in screen_text(app)
    path = shifted_results(results_path, tmp_path, 0.5)
    slightly = analysis.SLIGHTLY_POSITIVE[analysis.label_kind("rf")]
    app = QcapproxApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.view.threshold == slightly
        assert f"below {slightly:+.3f} eV/atom (opening: none below 0)" in screen_text(app)
        await press(pilot, "t", "0", "enter")  # a given threshold replaces the opening one
        assert app.view.threshold == 0.0 and not app.view.opening
        assert "every set empty below +0.000" in screen_text(app)
    app = QcapproxApp(path, threshold=0.0)
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot)
        assert app.view.threshold == 0.0 and "none<0" not in screen_text(app)


@sync
async def test_known_phase_marked_ranked_and_found(results_path: Path, res: Results) -> None:
    """The known Sc57Pt13 phase is marked in the candidate tables with its rank per limit,
    and Ctrl-P "known" shows it in Detail."""
    known = res.known_phase_row("Pt")
    pred = res.predictions("Pt", "rf")
    app = QcapproxApp(results_path, threshold=1.0)  # every configuration below: it is listed
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "enter")
        table = app.pane(CandidatesPane).table
        marked = [r for r in range(table.row_count) if table.row(r)[0] == KNOWN_MARK]
        assert len(marked) == 1 and int(table.row(marked[0])[-1]) == int(res.ids("Pt")[known])
        assert table._style(marked[0]) is not None  # drawn in its own style
        rank_24 = int((pred[12] < pred[12, known]).sum()) + 1
        assert f"rank {int((pred[0] < pred[0, known]).sum()) + 1:,} at 0, {rank_24:,} at 24" in (
            screen_text(app)
        )
        await press(pilot, "4")
        assert KNOWN_MARK in [app.pane(PicksPane).table.row(r)[0] for r in range(20)] or (
            f"rank {rank_24:,} at 24" in screen_text(app)
        )
        await press(pilot, "1", "ctrl+p")
        for key in "known":
            await pilot.press(key)
        await settle(pilot)
        await press(pilot, "enter")
        assert app.active_tab() == "detail" and app.pane(DetailPane).row == known
        assert "the known Sc57Pt13 phase" in screen_text(app)


@sync
async def test_detail_says_what_the_relaxation_ended_in(
    results_path: Path, res: Results, tmp_path: Path
) -> None:
    """With relaxation maps in the file, Detail says what the configuration relaxed into, in
    the report's words; without them it says nothing."""
    known = res.known_phase_row("Pt")
    other = int(res.ids("Pt")[known + 1])
    path = tmp_path / "mapped.h5"
    shutil.copyfile(results_path, path)
    with h5py.File(path, "r+") as handle:
        into = np.full(len(res.ids("Pt")), NOT_RELAXED, dtype=np.int64)
        into[known] = other
        handle["Pt/relaxed_into"] = into
    for file, said in ((path, f"relaxed into configuration {other}"), (results_path, None)):
        app = QcapproxApp(file, threshold=1.0)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            app.pane(DetailPane).show_row(known)
            await press(pilot, "5")
            text = screen_text(app)
            assert "the known Sc57Pt13 phase" in text
            if said:
                assert said in text
            else:
                assert "relaxed into" not in text and KEPT not in text


@sync
async def test_robustness_view(results_path: Path, res: Results, tmp_path: Path) -> None:
    """Families ranked as `analysis.robustness` ranks them; an empty B_24 is flagged
    vacuous, never shown as a recall of 1; enter opens the family."""
    app = QcapproxApp(results_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "7")
        families = [analysis.analyse_family(res, "Pt", b, 0.0) for b in res.backbones("Pt")]
        expected = analysis.robustness(families)
        rows = table_rows(app.pane(RobustnessPane).table)
        assert [r[1] for r in rows] == [r.backbone for r in expected]
        for row, r in zip(rows, expected, strict=True):
            assert row[3] == str(r.reference_size)
            assert row[4] == number(r.mean_recall, "fraction", 5)
            assert row[8] == f"{r.known_rank:,.0f}"
        app.pane(RobustnessPane).table.move_cursor(1)
        await press(pilot, "enter")
        assert app.backbone == expected[1].backbone and app.active_tab() == "limits"
    app = QcapproxApp(results_path, threshold=-1.0)  # every set empty: vacuous
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot)
        await press(pilot, "7")
        rows = table_rows(app.pane(RobustnessPane).table)
        assert rows and all(r[3] == "0" and r[4] == "vac." for r in rows)
        assert "2 vacuous (B24 empty)" in str(app.pane(RobustnessPane).heading.render())


@pytest.mark.parametrize("size", [(60, 20), (80, 24)], ids=["60x20", "80x24"])
def test_footer_and_tables_fit(results_path: Path, size: tuple[int, int]) -> None:
    """Every tab's footer keys fit the width (no key cut or drawn over), the last
    candidate row is drawn whole when the cursor is on it, and a candidate table wider than
    the screen scrolls sideways to its id column."""

    async def check() -> None:
        app = QcapproxApp(results_path)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            for k, pane in enumerate(app.panes.values()):
                await press(pilot, str(k + 1))
                keys = list(app.screen.query(FooterKey))
                assert keys, pane.TAB
                assert max(key.region.right for key in keys) <= size[0], pane.TAB
                assert len({key.region.x for key in keys}) == len(keys), pane.TAB  # no overlap
            await press(pilot, "2", "end")
            table = app.pane(CandidatesPane).table
            last = table.row(table.row_count - 1)
            above_footer = screen_text(app).splitlines()[-2]
            assert f"{last[2]}  {last[3]}" in above_footer  # A4 and E@i of the last row
            # a table wider than the screen scrolls sideways a column at a time, to the id
            cut = table.virtual_size.width > table.scrollable_content_region.width
            assert cut == (size[0] < 70)
            for _ in range(len(table.columns)):
                await press(pilot, "right")
            assert screen_text(app).splitlines()[-2].rstrip().endswith(f"{last[5]} {last[6]}")
            await press(pilot, "left")
            assert 0 < table.scroll_x < table.max_scroll_x or not cut

    asyncio.run(check())


# ---------------------------------------------------------------- responsiveness
@sync
async def test_fifty_quick_moves_then_quit(results_path: Path, res: Results) -> None:
    """Keys are pressed without waiting for the work they start; the screen then shows the
    last selection, and q quits."""
    app = QcapproxApp(results_path)
    sets = below(res.predictions("Pt", "rf"))
    async with app.run_test(size=(120, 40)) as pilot:  # 120x40: the candidate preview too
        await settle(pilot)
        moves = ["down", "left"] * 12 + ["up"] * 13 + ["right"] * 13
        for key in moves:
            await pilot.press(key)
        await settle(pilot)
        i, j = app.cell
        assert (LIMITS[i], LIMITS[j]) == (0, 24)
        moves = ["down"] * 25 + ["left"] * 6
        for key in moves:
            await pilot.press(key)
        await settle(pilot)
        i, j = app.cell
        assert (LIMITS[i], LIMITS[j]) == (24, 12)
        summary = str(app.pane(LimitsPane).summary.render())
        assert f"i=24 j=12 │ both {len(sets[i] & sets[j])} │" in summary
        preview = app.pane(LimitsPane).preview
        assert preview.display and preview.row_count == len(sets[i] & sets[j])
        ids = res.ids("Pt")
        assert {int(r[ID]) for r in table_rows(preview)} == {int(ids[c]) for c in sets[i] & sets[j]}
        # a stale answer (an older view) arriving after a new selection is dropped
        limits = app.pane(LimitsPane)
        stale = (limits.view, limits.cell)
        await press(pilot, "b")
        shown = preview.row_count
        limits.show_rows(stale, np.zeros(0, dtype=np.int64))
        assert preview.row_count == shown
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


FIRST_FRAME = """
import asyncio, sys
from qcapprox.tui.app import QcapproxApp

class FirstFrame(QcapproxApp):
    def _open(self, path):  # the file is opened after the first frame: not here
        pass

async def main():
    app = FirstFrame(sys.argv[1])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()  # the first frame is drawn
        heavy = ("h5py", "ase", "spglib", "pymatgen", "torch", "matplotlib", "qcapprox.results")
        print(sorted(m for m in heavy if m in sys.modules))

asyncio.run(main())
"""


def test_first_frame_imports_nothing_heavy(results_path: Path) -> None:
    """The UI draws its first frame without h5py, ASE, spglib, pymatgen, torch or
    matplotlib (and without the results machinery): the file is opened in a worker."""
    out = subprocess.run(
        [sys.executable, "-c", FIRST_FRAME, str(results_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_limits_constant_matches_datasets() -> None:
    assert tui_format.LIMITS == datasets.LIMITS


# ---------------------------------------------------------------- help and legends
@sync
async def test_help_lists_every_key_and_definition(results_path: Path) -> None:
    app = QcapproxApp(results_path)
    async with app.run_test(size=(100, 60)) as pilot:
        await settle(pilot)
        for key in ("question_mark", "f1", "h"):
            await press(pilot, key)
            assert isinstance(app.screen, HelpScreen)
            text = str(app.screen.query_one("#help-text").render())
            for binding_key in ("d", "b", "t", "1-7", "m", "v", "s", "/", "o", "k", "a", "c", "p"):
                assert re.search(rf"^\s+{re.escape(binding_key)}  \w", text, re.M), binding_key
            for term in (
                "below-hull set",
                "recall vs 24",
                "overlap %",
                "Jaccard",
                "SimilarityScore",
            ):
                assert term in text
            assert "the recall is 1 (the study's convention)" in text
            assert "CHGNet labels, a stand-in for DFT" in text
            assert "░▒▓█" in text
            await press(pilot, "escape")
            assert not isinstance(app.screen, HelpScreen)
        await press(pilot, "ctrl+p")
        assert type(app.screen).__name__ == "CommandPalette"


@sync
async def test_empty_sets_and_recall_convention(results_path: Path) -> None:
    app = QcapproxApp(results_path, threshold=-1.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "every set empty below -1.000 (t: threshold)" in text
        assert "recall 1: B24 empty" in text
        np.testing.assert_array_equal(app.view.primary.recall, np.ones(13))


@sync
async def test_resize_and_no_color(results_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = QcapproxApp(results_path)
    assert app.no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        heat = app.pane(LimitsPane).heatmap
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
        assert "░▒▓█" in text  # and their legend
        # every column of the narrow maps is labelled: labels are written downwards
        assert re.search(r"0 2 4 6 8 0 2 4 6 8 0 2 4", text)


@sync
async def test_one_backbone_without_metrics(tmp_path: Path) -> None:
    store = build_store(tmp_path, "Rh", {"rf": ()})
    with h5py.File(store, "r+") as handle:
        del handle["metrics"]
    app = QcapproxApp(bundle({"Rh": store}, tmp_path / "rh.h5"), export_dir=tmp_path / "out")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.other is None
        await press(pilot, "3")
        assert "Compare needs two backbones" in screen_text(app)
        await press(pilot, "4", "a")
        assert app.pane(PicksPane).scope == "backbone"
        await press(pilot, "6")
        assert "no test metrics for rf (Rh) in this file" in screen_text(app)
        await press(pilot, "5")
        await press(pilot, "c")  # nothing chosen yet: a message, no file
        assert "choose a configuration first" in screen_text(app)
        assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- snapshots
@pytest.fixture
def snapshot_app(results_path: Path, monkeypatch) -> QcapproxApp:
    monkeypatch.delenv("NO_COLOR", raising=False)  # snapshots are taken in colour
    return QcapproxApp(results_path)


SIZES = {"60x20": (60, 20), "80x24": (80, 24), "120x40": (120, 40), "200x50": (200, 50)}


# keys from the opened app to each tab's state on the snapshot
TAB_KEYS = {
    "limits": ("down", "left"),
    "candidates": ("left", "up", "enter"),
    "compare": ("3", "m", "m", "m"),
    "robust": ("4", "k"),
    "detail": ("enter", "enter"),
    "test": ("6",),
    "robustness": ("7",),
}


@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
@pytest.mark.parametrize("tab", list(TAB_KEYS))
def test_snapshot(snap_compare, snapshot_app: QcapproxApp, tab: str, size) -> None:
    """Every tab at 60x20, 80x24, 120x40 and 200x50."""

    async def before(pilot) -> None:
        await settle(pilot)
        await press(pilot, *TAB_KEYS[tab])

    assert snap_compare(snapshot_app, terminal_size=size, run_before=before)


def test_snapshot_help_80x24(snap_compare, snapshot_app: QcapproxApp) -> None:
    async def before(pilot) -> None:
        await settle(pilot)
        await press(pilot, "question_mark")

    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=before)
