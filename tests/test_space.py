"""The README's Hugging Face Spaces front matter matches the repository."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}  # what Spaces accept


def front_matter() -> dict:
    text = (REPO / "README.md").read_text()
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with a YAML block between --- lines"
    return yaml.safe_load(match.group(1))


def pinned(package: str) -> str:
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == package:
            return line.split("==")[1].strip()
    raise AssertionError(f"{package} is not pinned in requirements.txt")


def test_front_matter_has_every_field() -> None:
    meta = front_matter()
    required = {"title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "python_version",
                "suggested_hardware", "license", "short_description", "tags"}
    assert required <= set(meta), required - set(meta)


def test_front_matter_matches_the_repository() -> None:
    meta = front_matter()
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == pinned("gradio")
    assert (REPO / meta["app_file"]).is_file() and meta["app_file"] == "app.py"
    assert isinstance(meta["python_version"], str) and re.fullmatch(r"3\.(1[1-9])", meta["python_version"])
    assert meta["suggested_hardware"] == "cpu-basic"
    assert meta["license"] == "apache-2.0" and "Apache License" in (REPO / "LICENSE").read_text()[:200]
    assert meta["colorFrom"] in COLOURS and meta["colorTo"] in COLOURS
    assert 0 < len(meta["short_description"]) <= 60
    assert meta["tags"] and all(isinstance(t, str) and t == t.lower() for t in meta["tags"])
