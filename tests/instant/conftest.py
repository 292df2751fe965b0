"""Fixtures for instant likenesses: the package photos as files, one torch thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image


@pytest.fixture(scope="session")
def package_photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """grace_hopper (matplotlib), astronaut and coffee (scikit-image) as JPEG files."""
    from matplotlib import cbook
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    photos = {
        "grace": Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"),
        "astronaut": Image.fromarray(data.astronaut()),
        "coffee": Image.fromarray(data.coffee()),
    }
    paths = {}
    for name, image in photos.items():
        paths[name] = folder / f"{name}.jpg"
        image.save(paths[name], quality=92)
    return paths


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def processors_and_state(unet: torch.nn.Module) -> tuple[dict, dict]:
    """The UNet's attention-processor objects and a copy of its state dict."""
    return dict(unet.attn_processors), {k: v.detach().clone() for k, v in unet.state_dict().items()}


def assert_unchanged(unet: torch.nn.Module, before: tuple[dict, dict]) -> None:
    processors, state = before
    now = unet.attn_processors
    assert now.keys() == processors.keys()
    assert all(now[name] is processors[name] for name in processors), "attention processors were replaced"
    assert unet.encoder_hid_proj is None and unet.config.encoder_hid_dim_type is None
    after = unet.state_dict()
    assert after.keys() == state.keys(), set(after) ^ set(state)
    assert all(torch.equal(after[k], v) for k, v in state.items())
