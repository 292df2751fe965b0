"""Which talk engine fits this machine: a pure function of its memory figures (no torch import).

AniPortrait's resident weights at the published sizes (parameters counted from the published files' key/shape
list in tests/fixtures/talk and from the CLIP/VAE configs): ReferenceNet 859.5 M (a whole SD1.5 UNet),
denoising UNet 859.5 M + motion modules 453.2 M, PoseGuider 167.5 M (its 1408-wide attention), CLIP ViT-L/14
image encoder 304.0 M, VAE 83.7 M, audio2mesh 95.5 M and audio2pose 120.1 M (each with its own
wav2vec2-base encoder): 2.94 G parameters, 5.5 GiB in half precision.
The working memory of one 16-frame window with guidance (32 latent frames through the UNet, attention over
64 x 64 latents at 512 px) is an *estimate*, not a measurement (no GPU here): about 4 GB at 512 px and
1.5 GB at 256 px with PyTorch's fused attention. SadTalker's nets are about 0.6 GB and fit anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

ANIPORTRAIT_PARAMS = 2.943e9
HALF_BYTES = 2
WORKING_GB = {256: 1.5, 512: 4.0}  # estimate, see the module docstring
HEADROOM_GB = 1.0  # CUDA context, allocator fragmentation


def aniportrait_needs_gb(size: int, bytes_per_param: int = HALF_BYTES) -> float:
    return ANIPORTRAIT_PARAMS * bytes_per_param / 2**30 + WORKING_GB[size] + HEADROOM_GB


@dataclass(frozen=True)
class EngineAdvice:
    engine: str  # the engine we recommend here
    aniportrait_size: int | None  # the largest AniPortrait size that fits, None if none
    reason: str


def advise(device: str, vram_gb: float | None) -> EngineAdvice:
    """``device`` "cuda", "mps" or "cpu"; ``vram_gb`` the card's total memory when it is CUDA."""
    if device != "cuda" or vram_gb is None:
        return EngineAdvice("sadtalker", None, f"no CUDA GPU ({device}): AniPortrait runs, but at minutes per "
                                               "frame; use SadTalker")
    fitting = [size for size in sorted(WORKING_GB) if aniportrait_needs_gb(size) <= vram_gb]
    if not fitting:
        return EngineAdvice("sadtalker", None, f"{vram_gb:.0f} GB VRAM: AniPortrait needs about "
                                               f"{aniportrait_needs_gb(256):.1f} GB even at 256 px (estimate); "
                                               "use SadTalker")
    best = fitting[-1]
    return EngineAdvice("aniportrait", best, f"{vram_gb:.0f} GB VRAM: AniPortrait fits at up to {best} px "
                                             f"(needs about {aniportrait_needs_gb(best):.1f} GB, estimate)")
