"""Training step time: our loop (VAE latents + text embeddings computed once) vs encoding every step.

Both loops train the same peft LoRA (rank 32 on every linear layer of the transformer blocks and their
1x1 projections, the trainer's ``UNET_TARGETS``) on the same random models,
same images, batch 1, AdamW, fp32 on the CPU. The baseline does what the common training
scripts do each step: VAE-encode the image (sampling the latent), run the text encoder, then the UNet.
Ours calls ``micro_batch_loss`` (the function the trainer uses) on latents from ``encode_dataset``.

Models: Stable Diffusion 1.5's VAE and CLIP text encoder at full size (random weights), and two SD-shaped
UNets: the full-size SD1.5 UNet (block channels 320/640/1280/1280, the one that matters) and a half-width
one (160/320/640/640; a quarter of the cost, so the VAE's share of its step is larger and its ratio
flatters). Both loops use the UNet and optimizer exactly as the trainer prepares them
(``prepare_unet_for_training``: channels-last, fused attention, and on the CPU a faster library path per layer
shape, ``likeness/cpu_kernels.py``; ``make_optimizer``: fused AdamW), so a
cheaper step shows in both; the baseline keeps its per-step VAE and text-encoder work.

Rows: the full-size UNet at 512 px (the presets' training size) and at 256 px (the size the target was first
measured at), the half-width one at 256 px. Three to five measured steps each keep the run to about six minutes.
Target: ratio <= 0.7 at full size.

    python bench/train_bench.py    # TRAIN_BENCH_SIZE=256|512 and TRAIN_BENCH_UNET=full-size|half-width: one row
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portrait_studio.likeness.config import TrainingConfig  # noqa: E402
from portrait_studio.likeness.dataset import TrainingImages, _pixels, encode_dataset, tokenize  # noqa: E402
from portrait_studio.likeness.loss import micro_batch_loss  # noqa: E402
from portrait_studio.likeness.setup import (  # noqa: E402
    UNET_TARGETS,
    Precision,
    make_optimizer,
    prepare_unet_for_training,
    step_generator,
)
from portrait_studio.models.tiny import write_clip_tokenizer  # noqa: E402

# (UNet, pixels): the presets train at 512 px; the target was first measured at 256 px.
ROWS = [("full-size", 512), ("full-size", 256), ("half-width", 256)]
IMAGES = 2
WARMUP = 1
MEASURED = {512: 3, 256: 5}  # interleaved steps of each loop: fewer of the long ones
UNET_CHANNELS = {"full-size": (320, 640, 1280, 1280), "half-width": (160, 320, 640, 640)}
TARGET = 0.7


def build_models(cache: Path, unet_size: str, size: int):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    ).eval().requires_grad_(False)
    unet = UNet2DConditionModel(
        block_out_channels=UNET_CHANNELS[unet_size], cross_attention_dim=768, attention_head_dim=8,
        sample_size=size // 8,
    ).requires_grad_(False)
    unet.add_adapter(LoraConfig(r=32, lora_alpha=16, init_lora_weights="gaussian", target_modules=UNET_TARGETS))
    prepare_unet_for_training(unet, torch.device("cpu"))
    vocab = write_clip_tokenizer(cache / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(str(cache / "tokenizer"))
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )).eval().requires_grad_(False)
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    return vae, unet, text_encoder, tokenizer, scheduler


def images(size: int) -> TrainingImages:
    rng = np.random.default_rng(0)
    pics = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(IMAGES)]
    return TrainingImages(pics, [None] * IMAGES, [str(i) for i in range(IMAGES)])


def step_clock() -> float:
    """CPU seconds of this thread: with one torch thread all the work runs here, and unlike wall time it
    does not count the time other processes on a shared machine hold the cores (wall time with ~15 busy
    processes on 2 cores inflated steps ~10x and swung the ratio by +-0.05 between runs).
    ``TRAIN_BENCH_WALL=1`` measures wall time instead."""
    return time.perf_counter() if os.environ.get("TRAIN_BENCH_WALL") == "1" else time.thread_time()


def timed_steps(step, count: int) -> list[float]:
    times = []
    for index in range(count):
        started = step_clock()
        step(index)
        times.append(step_clock() - started)
    return times


def run() -> list[dict]:
    chosen = [(unet, size) for unet, size in ROWS
              if os.environ.get("TRAIN_BENCH_UNET", unet) == unet
              and int(os.environ.get("TRAIN_BENCH_SIZE", size)) == size]
    rows: list[dict] = []
    for unet_size, size in chosen:
        # Each row in a fresh process, so no row inherits the models, caches and allocator state of the rows
        # before it. The two loops of a row still run side by side, interleaved.
        done = subprocess.run([sys.executable, __file__, "--row", unet_size, str(size)], stdout=subprocess.PIPE,
                              text=True, check=True)
        lines = done.stdout.strip().splitlines()
        print("\n".join(lines[:-1]), end="\n" if len(lines) > 1 else "")  # TRAIN_BENCH_VERBOSE's step times
        rows += json.loads(lines[-1])
    return rows


def run_size(unet_size: str, size: int) -> list[dict]:
    import tempfile

    # One thread: on a shared 2-core machine OpenMP threads spin against other processes and make the
    # timings erratic; the ratio of two single-thread step times is what we compare.
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        vae, unet, text_encoder, tokenizer, scheduler = build_models(Path(tmp), unet_size, size)
    config = TrainingConfig(preset="Custom", steps=100, resolution=size, grad_accum=1, rank=32, alpha=16,
                            checkpoint_every=100, flip=True).validate()
    device = torch.device("cpu")
    precision = Precision(torch.float32, None, False)
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = make_optimizer([{"params": params, "lr": 1e-4}], config, device)
    data_images = images(size)

    started = step_clock()
    data = encode_dataset(data_images, vae, text_encoder, tokenizer, config.caption_text(), flip=True,
                          mask_loss=False, mask_background_weight=1.0)
    precompute = step_clock() - started

    def ours(step: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = micro_batch_loss(unet, None, data, scheduler, step_generator(0, step), config, device, precision)
        loss.backward()
        optimizer.step()

    pixels = _pixels(data_images.images)
    input_ids = tokenize(tokenizer, config.caption_text())

    def encode_every_step(step: int) -> None:
        generator = step_generator(0, step)
        optimizer.zero_grad(set_to_none=True)
        index = torch.randint(IMAGES, (1,), generator=generator)
        batch = pixels[index]
        if torch.rand(1, generator=generator).item() < 0.5:
            batch = torch.flip(batch, dims=[3])
        with torch.no_grad():
            dist = vae.encode(batch).latent_dist
            latents = (dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator)) * 0.18215
            states = text_encoder(input_ids)[0]
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, 1000, (1,), generator=generator)
        pred = unet(scheduler.add_noise(latents, noise, timesteps), timesteps, states).sample
        torch.nn.functional.mse_loss(pred, noise).backward()
        optimizer.step()

    timed_steps(ours, WARMUP)
    timed_steps(encode_every_step, WARMUP)
    # Interleave the two so load from other processes hits both alike.
    ours_times, base_times = [], []
    for index in range(MEASURED.get(size, 3)):
        ours_times += timed_steps(lambda i, k=index: ours(100 + k), 1)
        base_times += timed_steps(lambda i, k=index: encode_every_step(100 + k), 1)
    if os.environ.get("TRAIN_BENCH_VERBOSE") == "1":
        print("ours", [round(t, 2) for t in ours_times], "baseline", [round(t, 2) for t in base_times])
    ours_s = statistics.median(ours_times)
    base_s = statistics.median(base_times)
    ratio = ours_s / base_s
    verdict = f"(target <= {TARGET}); {'PASS' if ratio <= TARGET else 'FAIL'}" if unet_size == "full-size" else (
        "(a quarter of the UNet: flatters)")
    bench = f"train, {unet_size} UNet"
    return [
        {"bench": bench, "case": f"step, encode every step ({size}px)", "seconds": base_s, "ratio": 1.0,
         "ratio_means": "baseline"},
        {"bench": bench, "case": f"step, precomputed latents ({size}px)", "seconds": ours_s, "ratio": ratio,
         "ratio_means": f"ours / baseline step time {verdict}"},
        {"bench": bench, "case": f"one-off encode of {IMAGES} crops x2 flips ({size}px)", "seconds": precompute,
         "ratio": precompute / base_s, "ratio_means": "one-off cost in baseline steps"},
    ]


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--row":  # one row, in this process (see run)
        print(json.dumps(run_size(sys.argv[2], int(sys.argv[3]))))
    else:
        for row in run():
            print(row)
