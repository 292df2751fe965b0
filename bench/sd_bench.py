"""Foundation bench: what a warm request spends on loading, and what two pipelines cost in memory.

Uses a Stable Diffusion 1.5-*sized* random model (860M-parameter UNet, full VAE and CLIP text encoder)
written once under bench/.cache/, loaded through the same ModelManager the app uses.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from portrait_studio.config import settings_from_env
from portrait_studio.models.manager import ModelManager
from portrait_studio.stylize.generate import GenerateRequest, generate

CACHE = Path(__file__).resolve().parent / ".cache"
SIZE = 256
STEPS = 2


def build_sd15_sized(folder: Path) -> Path:
    """Random weights with SD1.5's real shapes, in the diffusers folder format."""
    if (folder / "model_index.json").is_file():
        return folder
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from portrait_studio.models.tiny import write_clip_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64)  # SD1.5 defaults
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
    )
    vocab = write_clip_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    text_encoder = CLIPTextModel(
        CLIPTextConfig(vocab_size=vocab, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, max_position_embeddings=77,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
    )
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    ).save_pretrained(str(folder))
    return folder


def unique_bytes(*modules: torch.nn.Module) -> int:
    """Bytes of distinct tensor storages across modules (shared weights counted once)."""
    seen: dict[int, int] = {}
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def pipeline_modules(pipe) -> list[torch.nn.Module]:
    return [pipe.unet, pipe.vae, pipe.text_encoder]


def run() -> list[dict]:
    model_dir = build_sd15_sized(CACHE / "sd15-sized-random")
    rows = []

    def fresh_manager() -> ModelManager:
        settings = settings_from_env({}, home=CACHE / "home", offline=True, cache_gb=20.0,
                                     model_overrides={"base": str(model_dir)})
        return ModelManager(settings)

    request = GenerateRequest("a portrait", seed=1, steps=STEPS, width=SIZE, height=SIZE)

    manager = fresh_manager()
    start = time.perf_counter()
    manager.sd_components()
    cold_load = time.perf_counter() - start
    start = time.perf_counter()
    generate(manager, request)
    cold_total = cold_load + (time.perf_counter() - start)

    start = time.perf_counter()
    manager.sd_components()  # what a warm request pays for its models
    warm_load = time.perf_counter() - start
    start = time.perf_counter()
    generate(manager, request)
    warm_total = time.perf_counter() - start
    rows.append({"bench": "stylize request", "case": f"cold (load + {STEPS} steps @ {SIZE}px)",
                 "seconds": cold_total, "ratio": cold_load / cold_total, "ratio_means": "load share"})
    rows.append({"bench": "stylize request", "case": f"warm ({STEPS} steps @ {SIZE}px)",
                 "seconds": warm_total, "ratio": warm_load / warm_total, "ratio_means": "load share (target < 0.05)"})

    with manager.sd_pipeline("txt2img") as txt2img:
        single = unique_bytes(*pipeline_modules(txt2img))
        with manager.sd_pipeline("img2img") as img2img:
            shared = unique_bytes(*pipeline_modules(txt2img), *pipeline_modules(img2img))
    separate_manager = fresh_manager()
    with separate_manager.sd_pipeline("img2img") as other:
        separate = single + unique_bytes(*pipeline_modules(other))
    rows.append({"bench": "txt2img + img2img memory", "case": "one cache (shared components)",
                 "seconds": float("nan"), "ratio": shared / single, "ratio_means": "x one pipeline (target <= 1.1)"})
    rows.append({"bench": "txt2img + img2img memory", "case": "two separate loads",
                 "seconds": float("nan"), "ratio": separate / single, "ratio_means": "x one pipeline"})
    return rows
