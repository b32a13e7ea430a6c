"""Prompt-free heads on tiny generated data with the real LiteMedSAM encoder, and the study's CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medsam import heads as head_models
from medsam.errors import InputError, MedsamError
from medsam.finetune import heads, study
from medsam.metrics import dice
from medsam.predictor import load_model

H, W = 48, 64  # not square: exercises the padding of the 256 px grid
YY, XX = np.mgrid[:H, :W]
SPLITS = ["train", "train", "test"]  # each image is encoded once: ~2.5 CPU-s


def make_data(folder: Path) -> Path:
    """A manifest-layout folder, one dataset "cells" with classes cell and nucleus (inside the cell);
    the second training image has no nucleus row (the class is absent there)."""
    rng = np.random.default_rng(0)
    (folder / "cells" / "images").mkdir(parents=True)
    (folder / "cells" / "masks").mkdir(parents=True)
    rows = []
    for i, split in enumerate(SPLITS):
        cy, cx = rng.integers(16, 32), rng.integers(16, 48)
        cell = (YY - cy) ** 2 + (XX - cx) ** 2 < 12**2
        nucleus = (YY - cy) ** 2 + (XX - cx) ** 2 < 5**2 if i != 1 else np.zeros_like(cell)
        rgb = np.stack([np.where(nucleus, 60, np.where(cell, 220, 40)), np.where(cell & ~nucleus, 120, 40),
                        np.where(nucleus, 200, 50)], -1) + rng.normal(0, 6, (H, W, 3))
        name = f"img{i}"
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / "cells" / "images" / f"{name}.png")
        for obj, mask in (("cell", cell), ("nucleus", nucleus)):
            if mask.any():
                Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "cells" / "masks" / f"{name}__{obj}.png")
                rows.append({"dataset_id": "cells", "modality": "microscopy", "object": obj,
                             "image": f"cells/images/{name}.png", "mask": f"cells/masks/{name}__{obj}.png",
                             "group": f"cells:{name}", "split": split})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Features cached in a temporary folder for this module (each image is encoded once), on one
    thread: these small tensors gain little from two, and on a busy machine two cost 3x the time."""
    folder = tmp_path_factory.mktemp("cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSAM_CACHE", str(folder))
        yield folder
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def items(data: Path) -> dict[str, list[heads.Item]]:
    rows = pd.read_csv(data / "manifest.csv", dtype=str)
    loaded = heads.load_items(data, rows, heads.dataset_classes(rows), load_model("litemedsam"))
    split = rows.drop_duplicates("image").set_index("image")["split"]
    return {s: [it for it in loaded if split[it.name] == s] for s in ("train", "test")}


@pytest.mark.parametrize("kind", head_models.KINDS)
@pytest.mark.parametrize("classes", [1, 2])
def test_output_shapes(kind: str, classes: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 256, 256) if kind == "unet" else torch.randn(2, 256, 64, 64)
    with torch.inference_mode():
        assert head_models.build_head(kind, classes)(x).shape == (2, classes, 256, 256)


def test_items_map_masks_onto_the_padded_grid(items: dict[str, list[heads.Item]]) -> None:
    item = items["train"][0]
    assert item.geometry.resized == (192, 256)
    assert item.features.shape == (256, 64, 64) and item.pixels.shape == (3, 256, 256)
    assert item.target.shape == (2, 256, 256) and item.masks.shape == (2, H, W)
    assert not item.target[:, 192:].any() and not item.pixels[:, 192:].any()
    # nearest neighbour at 4x: every original pixel becomes a 4 x 4 block
    assert torch.equal(item.target[:, :192:4, ::4], torch.from_numpy(item.masks).float())
    assert not items["train"][1].masks[1].any()  # no nucleus row: an empty target


def test_decoder_starts_from_litemedsam() -> None:
    sam = load_model("litemedsam").model
    dec = head_models.build_head("decoder", 3, sam)
    ours, theirs = dec.transformer.state_dict(), sam.mask_decoder.transformer.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in theirs.items())
    assert torch.equal(dec.output_upscaling[0].weight, sam.mask_decoder.output_upscaling[0].weight)
    assert torch.equal(dec.class_tokens.weight[2], sam.mask_decoder.mask_tokens.weight[0])
    assert torch.equal(dec.pe_layer((64, 64))[None], sam.prompt_encoder.get_dense_pe())


def test_decoder_training_starts_at_the_class_prior(items: dict[str, list[heads.Item]]) -> None:
    train = items["train"]
    dec = head_models.build_head("decoder", 2, load_model("litemedsam").model)
    x = torch.stack([it.features for it in train])
    with torch.no_grad():
        before = dec(x)
        scale = heads.start_at_prior(dec, train)
        after = dec(x)
    prior = torch.stack([it.target for it in train]).mean((0, 2, 3))
    assert before.mean((0, 2, 3)).max() < -5  # LiteMedSAM's prompt-less output: far below any prior
    torch.testing.assert_close(after.mean((0, 2, 3)), torch.logit(prior), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(after, before * torch.tensor(scale).view(1, 2, 1, 1), atol=1e-4, rtol=1e-4)
    assert all(0 < s < 1 for s in scale)
    # through train_head: a lower starting loss than from LiteMedSAM's output, and it still falls
    losses = {start: [] for start in study.DECODER_STARTS}
    for start, log in losses.items():
        heads.train_head("decoder", train, steps=16, seed=0, batch_size=2, losses=log, decoder_start=start)
    assert losses["prior"][0] < losses["litemedsam"][0] and losses["prior"][-1] < losses["prior"][0]


@pytest.mark.parametrize("kind", head_models.KINDS)
def test_loss_falls_and_dice_is_a_fraction(kind: str, items: dict[str, list[heads.Item]]) -> None:
    losses: list[float] = []  # every step sees both training images: the losses are comparable
    model = heads.train_head(kind, items["train"], steps=8, seed=0, batch_size=2, losses=losses)
    assert len(losses) == 8 and np.mean(losses[-3:]) < np.mean(losses[:3]) and losses[-1] < losses[0]
    scores = heads.evaluate(model, kind, items["test"])
    assert scores.shape == (1, 2) and ((scores >= 0) & (scores <= 1)).all()


def test_an_absent_class_is_scored_by_cross_entropy_alone() -> None:
    import torch.nn.functional as F

    torch.manual_seed(0)
    logits = torch.randn(2, 2, 16, 16)
    target = torch.zeros(2, 2, 16, 16)
    target[0, 0, 4:10, 4:10] = 1  # class 0 on image 0; class 1 on neither; image 1 empty
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = logits[0, 0].sigmoid()
    dice0 = (2 * (prob * target[0, 0]).sum() + 1) / (prob.sum() + target[0, 0].sum() + 1)
    torch.testing.assert_close(heads.dice_bce_loss(logits, target), 1 - dice0 + bce)
    torch.testing.assert_close(heads.dice_bce_loss(logits, torch.zeros_like(target)),
                               F.binary_cross_entropy_with_logits(logits, torch.zeros_like(target)))
    full = torch.ones_like(target)  # every class present: the plain mean over images and classes
    p = logits.sigmoid()
    plain = (1 - (2 * p.sum((-2, -1)) + 1) / (p.sum((-2, -1)) + 256 + 1)).mean()
    want = plain + F.binary_cross_entropy_with_logits(logits, full)
    torch.testing.assert_close(heads.dice_bce_loss(logits, full), want)


def test_warmup_ramps_the_learning_rate_up_and_a_bad_start_is_refused(items: dict[str, list[heads.Item]]) -> None:
    torch.manual_seed(0)  # train_head's seed: its starting weights
    start = head_models.build_head("linear", 2).state_dict()
    step = {w: heads.train_head("linear", items["train"], steps=1, seed=0, warmup=w).state_dict() for w in (0, 4)}
    moved = {w: torch.cat([(sd[k] - start[k]).flatten() for k in start]) for w, sd in step.items()}
    assert moved[0].abs().max() > 0.01  # AdamW's first step moves each weight by about the full rate (0.1)
    torch.testing.assert_close(moved[4], moved[0] / 4, atol=1e-6, rtol=1e-3)  # first of 4 warm-up steps
    with pytest.raises(InputError, match="start 'prio' is unknown"):
        heads.train_head("decoder", items["train"], steps=1, decoder_start="prio")


def test_training_is_deterministic(items: dict[str, list[heads.Item]]) -> None:
    a, b = (heads.train_head("linear", items["train"], steps=5, seed=1) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("kind", head_models.KINDS)
def test_save_load_round_trip_and_predict(kind: str, items: dict[str, list[heads.Item]], data: Path,
                                          tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = head_models.build_head(kind, 2).eval()
    path = head_models.save_head(model, kind, ["cell", "nucleus"], tmp_path / "head.pt", "two images", "microscopy")
    assert set(torch.load(path, weights_only=True)) == {"kind", "classes", "encoder", "trained_on", "modality",
                                                        "state_dict"}
    saved = head_models.load_head(path)
    loaded = saved.model
    assert (saved.kind, saved.classes, saved.trained_on, saved.modality) == (kind, ["cell", "nucleus"], "two images",
                                                                             "microscopy")
    x = heads._inputs(kind, items["test"])
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))
    item = items["test"][0]
    rgb = np.asarray(Image.open(data / item.name).convert("RGB"))
    masks = head_models.predict_head(loaded, kind, rgb, load_model("litemedsam"))
    assert masks.shape == (2, H, W) and masks.dtype == bool
    expected = heads.evaluate(model, kind, [item])[0]
    assert [dice(m, g) for m, g in zip(masks, item.masks)] == pytest.approx(expected)


def test_load_head_refuses_other_files(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(MedsamError, match="not a head"):
        head_models.load_head(tmp_path / "other.pt")


def test_label_efficiency_cli_writes_rows_and_resumes(data: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    argv = ["--data", str(data), "--datasets", "cells", "--k", "1,all", "--draws", "2", "--steps", "2",
            "--out", str(out)]
    heads.main(argv)
    csv = out / "label_efficiency.csv"
    df = pd.read_csv(csv, dtype={"k_label": str})
    assert list(df.columns) == heads.COLUMNS and len(df) == 2 * 2 * 4 * 2  # k x draws x heads x classes
    assert set(df["k_label"]) == {"1", "all"} and set(df.loc[df["k_label"] == "all", "k"]) == {2}
    assert set(df["head"]) == set(head_models.KINDS) and set(df["class"]) == {"cell", "nucleus"}
    assert (df["n_test"] == 1).all() and (df["steps"] == 2).all() and df["dice_mean"].between(0, 1).all()
    assert not df.duplicated(study.KEY).any()

    heads.main(argv)  # all done: nothing trained, nothing written
    assert "Wrote 0 rows" in capsys.readouterr().out
    df.drop(index=[0, 1]).to_csv(csv, index=False)  # lose one training's rows: only they are redone
    heads.main(argv)
    again = pd.read_csv(csv, dtype={"k_label": str})
    assert len(again) == len(df) and not again.duplicated(study.KEY).any()
    runs = json.loads((out / "label_efficiency_provenance.json").read_text())["runs"]
    assert [r["rows_written"] for r in runs] == [32, 0, 2] and runs[0]["completed"]
    assert {"command", "git_commit", "versions", "machine", "wall_s"} <= set(runs[0])


def test_save_trains_on_all_images_and_the_app_finds_the_heads(data: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSAM_CHECKPOINTS", str(tmp_path / "ckpt"))
    heads.main(["--data", str(data), "--datasets", "cells", "--heads", "cnn,linear", "--steps", "3", "--save"])
    assert sorted(p.name for p in head_models.heads_dir().iterdir()) == ["cells-cnn.pt", "cells-linear.pt"]
    found = head_models.find_heads()
    assert found["cells: linear head"] == head_models.heads_dir() / "cells-linear.pt"
    saved = head_models.load_head(found["cells: cnn head"])
    assert saved.kind == "cnn" and saved.classes == ["cell", "nucleus"]
    assert saved.trained_on == "the 2 training images of cells (3 steps)" and saved.modality == "microscopy"
    assert not list(tmp_path.glob("**/label_efficiency*"))  # no study
    from medsam.service import segment_with_head

    rgb = np.zeros((64, 64, 3), np.uint8)
    assert "output means nothing here" in segment_with_head(found["cells: cnn head"], rgb, modality="ct")[1]
    assert "output means nothing here" not in segment_with_head(found["cells: cnn head"], rgb,
                                                                modality="microscopy")[1]


@pytest.mark.parametrize("args, message", [
    (["--heads", "resnet"], "Unknown head 'resnet'"),
    (["--k", "0"], "--k must be"),
    (["--datasets", "nope"], "no dataset 'nope'"),
])
def test_bad_cli_input_exits_with_one_sentence(args: list[str], message: str, data: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=message):
        heads.main(["--data", str(data), "--out", str(tmp_path / "r"), *args])


def test_linear_head_on_real_hc18(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSAM_CACHE", str(tmp_path))
    rows = pd.read_csv(data_dir / "manifest.csv", dtype=str).query("dataset_id == 'hc18'")
    pick = [rows.loc[rows["split"] == s, "image"].drop_duplicates().iloc[:2] for s in ("train", "test")]
    train, test = (heads.load_items(data_dir, rows[rows["image"].isin(p)], ["fetal_head"], load_model("litemedsam"))
                   for p in pick)
    model = heads.train_head("linear", train, steps=30, seed=0)
    assert heads.evaluate(model, "linear", test).mean() > 0.5
