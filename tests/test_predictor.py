"""Predictor: real-data DICE with LiteMedSAM boxes, batching, prompt checks, the embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import build_tiny_sam, tiny_spec
from medsam import InputError, Prompt, load_model
from medsam.metrics import dice
from medsam.models import Preprocessing
from medsam.predictor import Embedding, EmbeddingCache, Predictor, as_rgb

EASY = ["kvasir_seg", "ph2", "hc18", "wbc_cellavision", "medscribble_acdc"]


@pytest.fixture(scope="module")
def lite() -> Predictor:
    return load_model("litemedsam")


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


def test_litemedsam_box_dice_on_real_pairs(lite: Predictor, data_dir: Path, manifest: pd.DataFrame) -> None:
    from PIL import Image

    rows = manifest[manifest.dataset_id.isin(EASY)].groupby("dataset_id").head(1)
    assert len(rows) == len(EASY)
    scores = {}
    for _, row in rows.iterrows():
        rgb = np.asarray(Image.open(data_dir / row["image"]).convert("RGB"))
        gt = np.asarray(Image.open(data_dir / row["mask"])) > 0
        lite.set_image(rgb)
        out = lite.predict(box=_bbox(gt), multimask=False)
        assert out.masks.shape == (1, *gt.shape)
        scores[row.dataset_id] = dice(out.masks[0], gt)
    assert np.mean(list(scores.values())) > 0.85, scores
    assert min(scores.values()) > 0.75, scores


def _blob_image() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:96, :128]
    gt = (yy - 40) ** 2 / 20**2 + (xx - 70) ** 2 / 30**2 < 1
    rgb = np.where(gt[..., None], 200, 40).astype(np.uint8).repeat(3, axis=2)
    return rgb, gt


def test_synthetic_blob_box(lite: Predictor) -> None:
    rgb, gt = _blob_image()
    lite.set_image(rgb)
    out = lite.predict(box=_bbox(gt), multimask=False)
    assert dice(out.masks[0], gt) > 0.9


@pytest.mark.parametrize("precision", ["f32", "auto"])
def test_batch_equals_single_and_keeps_order(precision: str) -> None:
    """Exactly in f32; in bf16 (auto, on a CPU with native bf16) batches round differently."""
    lite = load_model("litemedsam", precision=precision)
    exact = lite.engine.name == "torch" or getattr(lite.engine, "precision", "f32") == "f32"
    rgb, gt = _blob_image()
    emb = lite.set_image(rgb)
    prompts = [
        {"box": _bbox(gt), "multimask": False},
        {"points": [[70, 40]], "labels": [1]},
        {"points": [[70, 40], [5, 5]], "labels": [1, 0], "box": _bbox(gt)},
        {"box": [40, 20, 100, 60], "multimask": False},
    ]
    batch = lite.predict_batch(prompts, embedding=emb)
    assert [len(r.scores) for r in batch] == [1, 3, 3, 1]
    for prompt, got in zip(prompts, batch):
        single = lite.predict(**prompt)
        if exact:
            np.testing.assert_allclose(got.logits, single.logits, atol=1e-4)
        assert (got.masks == single.masks).mean() > (0.999 if exact else 0.99)
    assert all(np.all(np.diff(r.scores) <= 0) for r in batch), "candidates sorted best first"


def test_mask_input_is_fed_back(lite: Predictor) -> None:
    rgb, gt = _blob_image()
    lite.set_image(rgb)
    first = lite.predict(points=[[70, 40]], labels=[1])
    again = lite.predict(points=[[70, 40], [10, 10]], labels=[1, 0], mask_input=first.logits[0])
    assert again.masks.shape == (3, *gt.shape)
    assert not np.allclose(again.logits, lite.predict(points=[[70, 40], [10, 10]], labels=[1, 0]).logits)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "at least one point or a box"),
    ({"points": [[500, 5]], "labels": [1]}, r"point \(500, 5\) is outside the 128x96 image"),
    ({"points": [[-1, 5]], "labels": [1]}, "outside"),
    ({"box": [50, 50, 10, 10]}, "inverted"),
    ({"box": [10, 10, 10, 40]}, "no area"),
    ({"box": [300, 300, 400, 400]}, "no area inside"),
    ({"points": [[1, 1]] * 10000, "labels": [1] * 10000}, "at most 100"),
    ({"points": [[1, 1], [2, 2]], "labels": [1]}, "one label per point"),
    ({"points": [[1, 1]], "labels": [2]}, "must be 1"),
    ({"points": [["a", 1]]}, "must be numbers"),
    ({"box": [0, 0, float("nan"), 5]}, "finite"),
])
def test_bad_prompts_are_plain_errors(lite: Predictor, kwargs: dict, message: str) -> None:
    lite.set_image(_blob_image()[0])
    with pytest.raises(InputError, match=message):
        lite.predict(**kwargs)


def test_box_partly_outside_is_clipped(lite: Predictor) -> None:
    rgb, gt = _blob_image()
    lite.set_image(rgb)
    out = lite.predict(box=[30, 10, 500, 70], multimask=False)
    assert out.masks.shape == (1, 96, 128)


@pytest.mark.parametrize("image, message", [
    (np.zeros((1, 1, 3), np.uint8), "at least 8x8"),
    (np.zeros((20, 20, 3), np.float32), "must be 8-bit"),
    (np.zeros((20, 20, 5), np.uint8), "expected"),
])
def test_bad_images_are_plain_errors(image: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        as_rgb(image)


def test_gray_and_rgba_are_accepted() -> None:
    assert as_rgb(np.zeros((10, 12), np.uint8)).shape == (10, 12, 3)
    assert as_rgb(np.zeros((10, 12, 4), np.uint8)).shape == (10, 12, 3)


def test_no_image_set(tmp_path: Path) -> None:
    pred = Predictor(tiny_spec(tmp_path), build_tiny_sam())
    with pytest.raises(InputError, match="set_image"):
        pred.predict(box=[0, 0, 5, 5])


def _emb(key: str, mb: float) -> Embedding:
    n = int(mb * 2**20 / 4)
    return Embedding(key, torch.zeros(n), None, 0.0)  # type: ignore[arg-type]


def test_cache_is_lru_and_bounded_in_bytes() -> None:
    cache = EmbeddingCache(max_bytes=10 * 2**20)
    for i in range(5):
        cache.put(_emb(f"k{i}", 3))
        assert cache.nbytes <= cache.max_bytes
    assert len(cache) == 3 and cache.get("k0") is None and cache.get("k4") is not None
    cache.get("k2")  # touch: k2 becomes most recent, k3 is now the oldest
    cache.put(_emb("k5", 3))
    assert cache.get("k2") is not None and cache.get("k3") is None
    cache.put(_emb("huge", 11))
    assert len(cache) == 0 and cache.nbytes == 0


def test_cached_embedding_is_reused(lite: Predictor) -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    first = lite.set_image(rgb)
    second = lite.set_image(rgb.copy())
    assert not first.cached and second.cached and second.features is first.features
    other = lite.set_image(rgb[::-1].copy())
    assert not other.cached and other.key != first.key


@pytest.mark.parametrize("kind, size, expect", [
    ("sam", 1024, (768, 1024)), ("litemedsam", 256, (192, 256)), ("medsam", 1024, (1024, 1024)),
])
def test_family_geometry(kind: str, size: int, expect: tuple[int, int]) -> None:
    pre = Preprocessing(kind, size)  # type: ignore[arg-type]
    rgb = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    x, geo = pre.image(rgb)
    assert x.shape == (1, 3, size, size) and geo.resized == expect
    h, w = expect
    assert float(x[..., h:, :].abs().sum()) == 0.0 and float(x[..., :, w:].abs().sum()) == 0.0
    if kind != "sam":  # min-max to [0, 1], no mean/std
        assert float(x.min()) == 0.0 and abs(float(x.max()) - 1.0) < 1e-6
    logits = pre.upscale(torch.zeros(1, 3, 256, 256), geo)
    assert logits.shape == (1, 3, 300, 400)


@pytest.mark.parametrize("gray", [False, True])
def test_medsam_preprocessing_is_skimage_resize_of_the_whole_image(gray: bool) -> None:
    """MedSAM resizes channel by channel for speed; the values must be those of its authors' call."""
    from skimage.transform import resize

    rgb = np.random.default_rng(1).integers(0, 255, (171, 256, 3), dtype=np.uint8)
    if gray:
        rgb[..., 1] = rgb[..., 2] = rgb[..., 0]
    x = resize(rgb, (1024, 1024), order=3, preserve_range=True, anti_aliasing=True).astype(np.float32)
    expected = (x - x.min()) / (x.max() - x.min())
    got = Preprocessing("medsam", 1024).image(rgb)[0][0].permute(1, 2, 0).numpy()
    assert np.abs(got - expected).max() < 1e-5


def test_prompt_make_defaults_labels_to_positive() -> None:
    p = Prompt.make(points=[[1, 2], [3, 4]])
    assert p.labels.tolist() == [1, 1]
