"""AniPortrait's cost on this CPU at the published sizes with random weights (outputs are not looked at).

Per frame at 256 and 512 px: the denoising UNet with motion modules and the reference attention on one window
of ``FRAMES`` frames with guidance (batch 2, as the engine runs it), divided by the frames, times the default 25
steps, plus the VAE decode of one frame. The window is shorter than the engine's 16 frames to keep the bench
short; the UNet's cost is linear in frames except the motion attention (16 x 16 per pixel, small), so the
per-frame figure carries over. Resident bytes: every AniPortrait network in float32, as this CPU runs them.
"""

from __future__ import annotations

import time

import torch

FRAMES = 2
STEPS = 25
SIZES = (256, 512)
SD15_UNET = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                 attention_head_dim=8, in_channels=4, out_channels=4, norm_num_groups=32,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)


def _bytes(*modules: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for m in modules for t in list(m.parameters()) + list(m.buffers()))


def _timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def run() -> list[dict]:
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Wav2Vec2Config

    from portrait_studio.talk.aniportrait.audio_models import Audio2Mesh, Audio2Pose
    from portrait_studio.talk.aniportrait.denoising_unet import DenoisingUNet, build_motion_unet
    from portrait_studio.talk.aniportrait.pose_guider import PoseGuider
    from portrait_studio.talk.aniportrait.reference_attention import reading, recording
    from portrait_studio.talk.aniportrait.reference_net import build_reference_net

    torch.manual_seed(0)
    reference = build_reference_net(SD15_UNET).eval()
    denoiser = DenoisingUNet(build_motion_unet(SD15_UNET)).eval()
    guider = PoseGuider().eval()
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4).eval()
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, patch_size=14,
        projection_dim=768, image_size=224)).eval()
    resident = _bytes(reference, denoiser, guider, vae, encoder, Audio2Mesh(Wav2Vec2Config()),
                      Audio2Pose(Wav2Vec2Config()))
    rows = [{"bench": "talk", "case": "aniportrait resident weights (float32, all networks)",
             "seconds": 0.0, "ratio": resident / 2**30, "ratio_means": "GiB"}]
    embeds = torch.randn(2, 1, 768)
    for size in SIZES:
        latent = size // 8
        with recording(reference) as bank:
            reference(torch.randn(2, 4, latent, latent), 0, encoder_hidden_states=embeds)
        pose = guider(torch.rand(2, 3, FRAMES, size, size) * 2 - 1)
        sample = torch.randn(2, 4, FRAMES, latent, latent)
        with reading(denoiser.unet, bank, True):
            step = _timed(lambda: denoiser(sample, torch.tensor(500), embeds, pose))  # noqa: B023
        decode = _timed(lambda: vae.decode(torch.randn(1, 4, latent, latent)))  # noqa: B023
        per_frame = STEPS * step / FRAMES + decode
        rows.append({"bench": "talk", "case": f"aniportrait {size}px, per frame ({STEPS} steps, guidance)",
                     "seconds": per_frame, "ratio": per_frame, "ratio_means": "s per frame (CPU, real size, "
                     f"random weights; one {FRAMES}-frame window step x {STEPS} + decode)"})
    return rows


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    for row in run():
        print(row)
