"""The /everything endpoint through gradio_client, on the app launched in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import served
from medsam.paths import REPO
from medsam.ui import build

XRAY = REPO / "assets" / "examples" / "images" / "cxr_41182_2020_203_fig5_html.png"


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    with served(build()) as url:
        yield Client(url, verbose=False)


def test_everything_endpoint_on_a_real_xray(client) -> None:
    from gradio_client import handle_file

    png, info = client.predict(handle_file(str(XRAY)), "litemedsam_ft", api_name="/everything")
    labels = np.asarray(Image.open(png))
    assert labels.shape == (754, 685) and info["image_size"] == [685, 754]
    assert info["grid"] == 16 and info["candidates"] == 768 and info["seconds"] > 0
    assert info["masks"] >= 1 and set(np.unique(labels)) - {0} <= set(range(1, info["masks"] + 1))
    assert len(info["scores"]) == len(info["areas"]) == info["masks"]
    assert info["scores"] == sorted(info["scores"], reverse=True)
    assert info["note"].startswith(f"Everything mode (litemedsam_ft): {info['masks']} mask")


@pytest.mark.parametrize("content, model, message", [
    (b"hello", "litemedsam_ft", "content is not a PNG"),
    (None, "no_such_model", "Unknown model 'no_such_model'"),
])
def test_everything_endpoint_bad_input_is_a_plain_error(client, tmp_path: Path, content: bytes | None,
                                                        model: str, message: str) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path = tmp_path / "image.png"
    path.write_bytes(XRAY.read_bytes() if content is None else content)
    with pytest.raises(AppError, match=message) as err:
        client.predict(handle_file(str(path)), model, api_name="/everything")
    assert "Traceback" not in str(err.value)
