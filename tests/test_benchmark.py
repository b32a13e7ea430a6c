"""Benchmark runner end to end on a tiny synthetic data folder with the real LiteMedSAM."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medsam import benchmark, load_model, results, runner
from medsam.prompts import STRATEGIES

YY, XX = np.mgrid[:96, :128]
ELLIPSES = {  # case -> ellipses (cy, cx, ry, rx); the second mask has two components
    "single": [(45, 64, 22, 32)],
    "double": [(30, 35, 14, 20), (65, 95, 16, 22)],
}


def make_data(folder: Path) -> Path:
    """A manifest-layout folder: 2 gray images with bright ellipses and their masks."""
    rows = []
    for case, shapes in ELLIPSES.items():
        gt = np.zeros(YY.shape, bool)
        for cy, cx, ry, rx in shapes:
            gt |= (YY - cy) ** 2 / ry**2 + (XX - cx) ** 2 / rx**2 < 1
        noise = np.random.default_rng(len(rows)).normal(0, 8, gt.shape)
        image = np.clip(np.where(gt, 190, 45) + noise, 0, 255).astype(np.uint8)
        for sub in ("images", "masks"):
            (folder / "synth" / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / "synth" / "images" / f"{case}.png")
        Image.fromarray(gt.astype(np.uint8) * 255).save(folder / "synth" / "masks" / f"{case}__blob.png")
        rows.append({"dataset_id": "synth", "modality": "ct", "object": "blob",
                     "image": f"synth/images/{case}.png", "mask": f"synth/masks/{case}__blob.png",
                     "source_repo": "generated", "source_path": "-", "license": "CC0", "citation": "-",
                     "group": f"synth:{case}", "split": "test"})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def full_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    benchmark.main(["--data", str(data), "--models", "litemedsam", "--out", str(out), "--grid", "4", "--seeds", "2"])
    return out


def test_rows_columns_and_scores(full_run: Path) -> None:
    df = pd.read_csv(full_run / "benchmark.csv")
    n_random = sum(s.random for s in STRATEGIES.values())
    assert len(df) == 2 * (len(STRATEGIES) - n_random + 2 * n_random)
    assert set(results.COLUMNS) <= set(df.columns)
    assert not df.duplicated(results.KEY).any()
    assert df["dice"].between(0, 1).all() and df["dice_oracle"].between(0, 1).all()
    single = df[df["mask"].str.contains("single")].set_index("strategy")
    assert single.loc["box", "dice"] > 0.8
    assert (df.loc[df["mask"].str.contains("double"), "n_components"] == 2).all()
    prompted = df[df["strategy"].map(lambda s: STRATEGIES[s].kind == "prompt")]
    assert (prompted["n_prompted"] == prompted["n_components"]).all()
    assert prompted.loc[prompted["strategy"].str.startswith("box_jitter"), "jitter_frac"].notna().all()
    inter = df[df["strategy"] == "interactive"]
    clicks = inter["dice_per_click"].map(json.loads)
    assert clicks.map(len).between(1, 10).all()
    assert (inter["dice"].round(4) == clicks.map(lambda c: round(c[-1], 4))).all()
    assert inter["noc90"].between(1, 10).all()
    auto = df[df["strategy"] == "everything"]
    assert (auto["dice"] == auto["dice_oracle"]).all()
    seeds = df.groupby("strategy")["seed"].agg(set)
    assert all(seeds[name] == ({0, 1} if spec.random else {0}) for name, spec in STRATEGIES.items())


def test_summary_and_provenance(full_run: Path) -> None:
    summary = pd.read_csv(full_run / "summary.csv")
    overall = summary[summary["modality"] == "all"]
    assert set(overall["strategy"]) == set(STRATEGIES)
    assert (overall.set_index("strategy").loc["box", ["n_rows", "n_pairs"]] == [2, 2]).all()
    assert set(summary["modality"]) == {"all", "ct"}
    run = json.loads((full_run / "provenance.json").read_text())["runs"][-1]
    assert run["pairs_done"] == 2 and run["completed"] and run["git_commit"]
    assert {"torch", "numpy", "medsam"} <= set(run["versions"]) and run["machine"]["cpu_count"]
    assert run["options"]["backend"] == [load_model("litemedsam", precision="f32").engine.tag], "pinned to f32"


def test_report_prints_the_table(full_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    benchmark.main(["--report", "--out", str(full_run)])
    text = capsys.readouterr().out
    assert text.startswith("litemedsam: 2 pairs, ") and "| box | 2 | " in text
    assert "Spearman correlation of box DICE with:" in text


def test_second_run_is_a_quick_no_op(full_run: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a model was loaded although nothing was left to do")

    monkeypatch.setattr(runner, "load_model", refuse)
    before = (full_run / "benchmark.csv").read_bytes()
    start = time.perf_counter()
    benchmark.main(["--data", str(data), "--out", str(full_run), "--grid", "4", "--seeds", "2"])
    assert time.perf_counter() - start < 5
    assert (full_run / "benchmark.csv").read_bytes() == before


def test_half_written_row_is_dropped_and_redone(data: Path, tmp_path: Path) -> None:
    args = ["--data", str(data), "--out", str(tmp_path), "--strategies", "box", "--limit", "1"]
    benchmark.main(args)
    csv = tmp_path / "benchmark.csv"
    csv.write_bytes(csv.read_bytes().rstrip(b"\n")[:-10])  # killed in the middle of the only row
    benchmark.main(args)
    df = pd.read_csv(csv)
    assert len(df) == 1 and df["dice"].notna().all()


def test_shards_cover_the_pairs_once_and_merge(data: Path, tmp_path: Path) -> None:
    for shard in ("1/2", "2/2"):
        benchmark.main(["--data", str(data), "--out", str(tmp_path), "--strategies", "box", "--shard", shard])
    parts = [pd.read_csv(tmp_path / f"benchmark.shard-{i}-of-2.csv") for i in (1, 2)]
    assert [len(p) for p in parts] == [1, 1]
    assert sorted(pd.concat(parts)["mask"]) == sorted(pd.read_csv(data / "manifest.csv")["mask"])
    assert not (tmp_path / "benchmark.csv").exists()
    benchmark.main(["--out", str(tmp_path), "--merge"])
    assert len(pd.read_csv(tmp_path / "benchmark.csv")) == 2
    assert not list(tmp_path.glob("*shard*")) and (tmp_path / "summary.csv").is_file()
    assert len(json.loads((tmp_path / "provenance.json").read_text())["runs"]) == 2


def test_run_order_is_round_robin_and_keeps_an_image_together(tmp_path: Path) -> None:
    rows = [("a", "a1", "a1m1"), ("a", "a1", "a1m2"), ("a", "a2", "a2m"), ("b", "b1", "b1m"), ("b", "b2", "b2m")]
    m = pd.DataFrame(rows, columns=["dataset_id", "image", "mask"])
    for col in ("modality", "object", "group", "split"):
        m[col] = "x"
    m.to_csv(tmp_path / "manifest.csv", index=False)
    order = runner.read_manifest(tmp_path)
    assert order["mask"].tolist() == ["a1m1", "a1m2", "b1m", "a2m", "b2m"]
    halves = [runner.select_pairs(order, None, (i, 2))["mask"].tolist() for i in (1, 2)]
    assert halves == [["a1m1", "a1m2", "a2m"], ["b1m", "b2m"]]
    assert runner.select_pairs(order, 2, None)["mask"].tolist() == ["a1m1", "a1m2"]
    m["split"] = ["test", "test", "train", "train", "test"]
    m.to_csv(tmp_path / "manifest.csv", index=False)
    tests = runner.select_pairs(runner.read_manifest(tmp_path), None, None, "test")
    assert tests["mask"].tolist() == ["a1m1", "a1m2", "b2m"]


@pytest.mark.parametrize("args,message", [
    (["--data", "{missing}"], "does not exist"),
    (["--data", "{empty}"], "no manifest.csv"),
    (["--data", "{data}", "--models", "nope"], "Unknown model 'nope'"),
    (["--data", "{data}", "--strategies", "box,nope"], "Unknown strategy 'nope'"),
    (["--data", "{data}", "--shard", "3/2"], "--shard must be i/n"),
    (["--data", "{data}", "--shard", "x"], "--shard must be i/n"),
    (["--data", "{data}", "--seeds", "0"], "--seeds must be at least 1"),
])
def test_bad_input_exits_with_one_sentence(args: list[str], message: str, data: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "data": data}
    with pytest.raises(SystemExit) as exc:
        benchmark.main([a.format(**paths) for a in args] + ["--out", str(tmp_path / "out")])
    text = str(exc.value.code)
    assert message in text and text.endswith(".") and "\n" not in text
    assert not (tmp_path / "out").exists()
