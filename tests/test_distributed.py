"""``--engine ray``: same rows as the local engine, resumable shards, and Ray stays optional."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medsam import benchmark, distributed, results, runner
from medsam.errors import MedsamError
from test_benchmark import make_data

REPO = Path(__file__).resolve().parents[1]
TIMINGS = ["encode_ms", "decode_ms", "wall_ms"]
# Eager PyTorch so both engines run the same kernels; three seeds-worth of random strategies is slow.
ARGS = ["--models", "litemedsam", "--grid", "4", "--seeds", "2", "--backend", "torch"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def local_rows(data: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("local")
    benchmark.main(["--data", str(data), "--out", str(out), *ARGS])
    return pd.read_csv(out / "benchmark.csv")


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A local Ray instance with 2 CPUs; workers use the tests' embedding cache and this checkout."""
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt")
    cache = tmp_path_factory.getbasetemp() / "medsam-cache"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"MEDSAM_CACHE": str(cache), "PYTHONPATH": str(REPO)}})
    yield
    ray.shutdown()


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = (df.drop(columns=TIMINGS).sort_values(results.KEY).reset_index(drop=True) for df in (a, b))
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=1e-6)


def test_ray_engine_gives_the_local_rows(ray_instance: None, local_rows: pd.DataFrame, data: Path,
                                         tmp_path: Path) -> None:
    benchmark.main(["--data", str(data), "--out", str(tmp_path), *ARGS, "--engine", "ray", "--block-size", "1"])
    same_rows(pd.read_csv(tmp_path / "benchmark.csv"), local_rows)
    assert not distributed.shard_files(tmp_path)
    run = json.loads((tmp_path / "provenance.json").read_text())["runs"][-1]
    assert run["completed"] and run["pairs_done"] == 2 and run["rows_written"] == len(local_rows)
    assert run["options"]["engine"] == "ray" and run["options"]["workers"] == 2
    assert run["options"]["backend"] == ["torch"]


def test_rerun_redoes_only_blocks_without_a_shard(ray_instance: None, local_rows: pd.DataFrame, data: Path,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(*_: object) -> None:  # the driver dies after the blocks finished, before folding them in
        raise KeyboardInterrupt

    args = ["--data", str(data), "--out", str(tmp_path), *ARGS, "--engine", "ray", "--block-size", "1"]
    with monkeypatch.context() as m:
        m.setattr(distributed, "fold_shards", killed)
        with pytest.raises(SystemExit, match="Interrupted"):
            benchmark.main(args)
    shards = distributed.shard_files(tmp_path)
    assert len(shards) == 2 and not (tmp_path / "benchmark.csv").exists()
    lost = len(pd.read_parquet(shards[0]))
    shards[0].unlink()
    benchmark.main(args)  # one block is redone, the other shard is folded in as it is
    assert json.loads((tmp_path / "provenance.json").read_text())["runs"][-1]["rows_written"] == lost
    same_rows(pd.read_csv(tmp_path / "benchmark.csv"), local_rows)
    assert not distributed.shard_files(tmp_path)


def test_without_ray_the_app_and_local_runner_work(data: Path, tmp_path: Path) -> None:
    code = f"""
import sys
sys.modules["ray"] = None  # as if Ray were not installed
import app
from medsam import benchmark
args = ["--data", {str(data)!r}, "--out", {str(tmp_path)!r}, "--strategies", "box", "--limit", "1"]
benchmark.main(args)
try:
    benchmark.main(args[:2] + ["--out", {str(tmp_path / 'ray')!r}, "--engine", "ray"])
except SystemExit as exc:
    print("EXIT:", exc)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "benchmark.csv")) == 1
    assert "EXIT: medsam.benchmark: Ray is not installed: pip install -r requirements-ray.txt" in done.stdout


def test_blocks_keep_an_image_together_and_have_stable_names(data: Path) -> None:
    manifest = runner.read_manifest(data)
    pairs = pd.concat([manifest, manifest.assign(mask=manifest["mask"].str.replace("blob", "other"))])
    work = [(pair, [("box", 0)]) for _, pair in pairs.iterrows()]
    clicks = [(pair, [("interactive", 0)]) for pair, _ in work]
    plan = [("point/box", "litemedsam", work), ("interactive", "litemedsam", clicks)]
    blocks = distributed.make_blocks(plan, images_per_block=1)
    assert len(blocks) == 2  # two images, two masks each
    for block in blocks:
        assert len({p["image"] for p, _ in block.pairs}) == 1 and len(block.pairs) == 2
        assert all(todo == (("box", 0), ("interactive", 0)) for _, todo in block.pairs)  # both passes, one encode
    assert [b.name for b in blocks] == [b.name for b in distributed.make_blocks(plan, 1)]
    assert len(distributed.make_blocks(plan, images_per_block=4)) == 1


class _Cluster:
    def __init__(self, **resources: float) -> None:
        self.resources = resources

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


def test_workers_fit_the_cluster() -> None:
    args = argparse.Namespace(workers=None, cpus_per_worker=1)
    assert distributed.worker_resources(_Cluster(CPU=2.0), args) == (2, {"num_cpus": 1}, "cpu")
    args.workers = 5  # more than fit: extra actors would never be placed
    assert distributed.worker_resources(_Cluster(CPU=2.0), args)[0] == 2
    gpu = distributed.worker_resources(_Cluster(CPU=16.0, GPU=4.0), argparse.Namespace(workers=None, cpus_per_worker=1))
    assert gpu == (4, {"num_gpus": 1, "num_cpus": 1}, "cuda")
    with pytest.raises(MedsamError, match="fewer than --cpus-per-worker 4"):
        distributed.worker_resources(_Cluster(CPU=2.0), argparse.Namespace(workers=None, cpus_per_worker=4))
