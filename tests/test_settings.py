"""One settings object reads every MEDSAM_* variable; a bad value is one plain sentence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medsam.settings import ConfigError, settings


@pytest.mark.parametrize("name, value, message", [
    ("MEDSAM_MAX_PIXELS", "lots", "MEDSAM_MAX_PIXELS must be a positive whole number, not 'lots'."),
    ("MEDSAM_MAX_PIXELS", "0", "MEDSAM_MAX_PIXELS must be a positive whole number, not '0'."),
    ("MEDSAM_CACHE_MB", "-5", "MEDSAM_CACHE_MB must be a positive number, not '-5'."),
    ("MEDSAM_THREADS", "two", "MEDSAM_THREADS must be a positive whole number, not 'two'."),
    ("MEDSAM_MAX_UPLOAD_MB", "1.5", "MEDSAM_MAX_UPLOAD_MB must be a positive whole number, not '1.5'."),
    ("MEDSAM_PRECISION", "fp8", "MEDSAM_PRECISION must be one of auto, f32, bf16, not 'fp8'."),
    ("MEDSAM_BACKEND", "tensorrt", "MEDSAM_BACKEND must be one of auto, openvino, onnxruntime, torch, not 'tensorrt'."),
    ("MEDSAM_DOWNLOAD", "maybe", "MEDSAM_DOWNLOAD must be 1, true or yes to turn it on, or 0, false or no to turn it "
                                 "off, not 'maybe'."),
])
def test_a_bad_value_is_one_sentence_naming_the_variable(monkeypatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        settings()
    assert str(err.value) == message


def test_defaults_and_changes(monkeypatch) -> None:
    for name in ("MEDSAM_CHECKPOINTS", "MEDSAM_DOWNLOAD", "SPACE_ID", "MEDSAM_BACKEND", "MEDSAM_THREADS",
                 "MEDSAM_MAX_PIXELS"):
        monkeypatch.delenv(name, raising=False)
    s = settings()
    assert s.checkpoints == Path("~/.cache/medsam").expanduser() and not s.checkpoints_configured
    assert not s.download and s.backend == "auto" and s.threads is None and s.max_pixels == 50_000_000
    monkeypatch.setenv("SPACE_ID", "someone/medsam")
    assert settings().download, "downloads are on by default on a Space"
    monkeypatch.setenv("MEDSAM_DOWNLOAD", "no")
    assert not settings().download
    monkeypatch.setenv("MEDSAM_BACKEND", "")
    assert settings().backend == "auto", "empty means auto, everywhere"
    monkeypatch.setenv("MEDSAM_THREADS", "3")
    assert settings().threads == 3


def test_python_path_is_split_into_its_entries(monkeypatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert settings().python_path == ()
    monkeypatch.setenv("PYTHONPATH", f"/a{os.pathsep}{os.pathsep}/b")
    assert settings().python_path == ("/a", "/b")


def test_an_empty_backend_means_auto_in_the_backends_too(monkeypatch) -> None:
    from medsam import backends

    monkeypatch.setenv("MEDSAM_BACKEND", "")
    assert backends.resolve() == backends.available()[0]


def test_the_shared_embedding_cache_is_made_on_first_use(monkeypatch) -> None:
    from medsam import predictor

    monkeypatch.setattr(predictor, "_SHARED_CACHE", None)
    monkeypatch.setenv("MEDSAM_CACHE_MB", "3")
    cache = predictor.shared_cache()
    assert cache.max_bytes == 3 * 2**20 and predictor.shared_cache() is cache
