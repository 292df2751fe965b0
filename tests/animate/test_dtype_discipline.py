"""A pipeline that raises halfway returns the shared modules in the dtype and on the device they came in."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from portrait_studio.animate.request import AnimateRequest
from portrait_studio.animate.service import animate
from portrait_studio.models.placement import placement_kept, placement_of
from tests.animate.conftest import SMALL


def dtypes(module: torch.nn.Module) -> set[torch.dtype]:
    return {p.dtype for p in module.parameters()}


def test_failure_inside_video_to_video_leaves_the_shared_vae_as_it_was(
    tiny_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SD1.5's VAE has force_upcast: video-to-video casts it to fp32 to encode the portrait and back after.
    A failure in between (here: in the encode) used to leave it fp32, and every later Stylize then failed
    with a dtype mismatch. On a CPU, bf16 stands in for the GPU's fp16."""
    from diffusers import AnimateDiffVideoToVideoPipeline

    from portrait_studio.models.manager import ModelManager

    manager = ModelManager(tiny_settings.replace(dtype="bfloat16"))
    vae = manager.sd_components("base", ("vae",))["vae"]
    vae.register_to_config(force_upcast=True)
    assert dtypes(vae) == {torch.bfloat16}
    seen: list[set[torch.dtype]] = []

    def failing_encode(self, video, generator, decode_chunk_size=16):  # noqa: ANN001, ANN202
        seen.append(dtypes(self.vae))
        raise RuntimeError("injected failure while encoding the portrait")

    monkeypatch.setattr(AnimateDiffVideoToVideoPipeline, "encode_video", failing_encode)
    portrait = Image.new("RGB", (32, 32), (200, 150, 120))
    request = AnimateRequest("a portrait", init_image=portrait, strength=0.6, portrait_mode="video2video", **SMALL)
    with pytest.raises(RuntimeError, match="injected"):
        animate(manager, request, tmp_path)
    assert seen == [{torch.float32}]  # the failure came while the VAE was upcast
    assert dtypes(vae) == {torch.bfloat16}
    # The next Stylize-style render works with the shared VAE.
    with manager.sd_pipeline("txt2img") as pipe:
        image = pipe("a portrait", num_inference_steps=1, height=32, width=32, output_type="np",
                     generator=torch.Generator().manual_seed(0)).images[0]
    assert image.shape == (32, 32, 3)


def test_placement_is_restored_per_tensor_and_only_where_it_changed() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).to(torch.bfloat16)
    before = placement_of(module)
    listed = torch.nn.Linear(2, 2).to(torch.bfloat16)  # e.g. several ControlNets passed as a list
    with pytest.raises(ValueError), placement_kept([module, "a tokenizer is not a module", [listed]]):
        module.float()
        listed.float()
        raise ValueError("halfway")
    assert placement_of(module) == before
    assert listed.weight.dtype == torch.bfloat16
    assert module[1].num_batches_tracked.dtype == torch.int64
