"""Building the trainable models: fresh UNet (+ text encoder) copies with a peft LoRA, precision, optimizer.

Training never touches the model cache's modules: the UNet (and the text encoder when it is trained)
are loaded fresh from disk. The frozen VAE, text encoder and tokenizer come from the cache and are
only read.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from portrait_studio.likeness.config import TrainingConfig
from portrait_studio.models.devices import cuda_has_native_bf16
from portrait_studio.models.files import weights_variant

log = logging.getLogger(__name__)

# Every linear layer of the UNet's transformer blocks, as EasyPhoto's (kohya-style) LoRA: self- and
# cross-attention projections, the GEGLU feed-forward, and the block's proj_in/proj_out (1x1 convolutions
# in SD1.5, linear layers in models with use_linear_projection; peft handles both).
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out"]
# Every linear layer of the CLIP text encoder's layers: attention and MLP.
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


@dataclass(frozen=True)
class Precision:
    weight_dtype: torch.dtype  # frozen base weights
    autocast_dtype: torch.dtype | None  # None = full precision, no autocast
    use_grad_scaler: bool


def pick_precision(config: TrainingConfig, device: torch.device, *, bf16_native: bool | None = None) -> Precision:
    """Mixed precision only on CUDA: bf16 where the card has it natively, else fp16; fp32 elsewhere.

    ``bf16_native`` (default: asked of the current card) makes the decision testable with fake figures.
    bf16 asked for on a card that only emulates it (RTX 20xx and older) trains in fp16 instead.
    """
    mode = config.mixed_precision
    if mode == "no" or device.type != "cuda":
        return Precision(torch.float32, None, False)
    native = cuda_has_native_bf16() if bf16_native is None else bf16_native
    if mode == "auto":
        mode = "bf16" if native else "fp16"
    elif mode == "bf16" and not native:
        log.warning("this GPU has no native bf16 (it would be emulated, several times slower): training in fp16")
        mode = "fp16"
    if mode == "bf16":
        return Precision(torch.bfloat16, torch.bfloat16, False)
    return Precision(torch.float16, torch.float16, True)


def make_accelerator(config: TrainingConfig, device: torch.device, precision: Precision) -> Any:
    """The ``Accelerator`` the loop runs through: our precision, our accumulation, the CPU when asked.

    Launched with ``accelerate launch`` it picks up the process group and this process's GPU from the
    environment; started directly it is a single process on ``device``.
    """
    from accelerate import Accelerator

    mixed = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(precision.autocast_dtype, "no")
    return Accelerator(mixed_precision=mixed, gradient_accumulation_steps=config.grad_accum,
                       cpu=device.type == "cpu")


def release_accelerator(accelerator: Any) -> None:
    """Drop the accelerator's references; in a single process also its global state, so the next training
    in this process may choose another precision (accelerate refuses to change it otherwise)."""
    from accelerate.state import AcceleratorState

    single = accelerator.num_processes == 1
    accelerator.free_memory()
    if single:
        AcceleratorState._reset_state(reset_partial_state=True)


def use_gradient_checkpointing(config: TrainingConfig, device: torch.device) -> bool:
    if config.gradient_checkpointing == "auto":
        return device.type == "cuda"
    return config.gradient_checkpointing == "on"


def lora_size(model: torch.nn.Module, targets: list[str], config: TrainingConfig) -> dict[str, float]:
    """``r`` and ``lora_alpha`` for ``model``: the preset's rank, capped at the smallest targeted layer's width.

    A rank above a layer's input or output size adds nothing, and the registry refuses such a file as malformed
    (no trainer writes one). SD1.5's targeted layers are at least 320 wide, so only tiny test models are
    capped; alpha keeps its ratio to the rank, so the LoRA's scale is the preset's.
    """
    widths = [
        min(getattr(m, "in_features", 0) or getattr(m, "in_channels", 0),
            getattr(m, "out_features", 0) or getattr(m, "out_channels", 0))
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)
        and any(name == t or name.endswith("." + t) for t in targets)
    ]
    rank = min([config.rank, *widths])
    return {"r": rank, "lora_alpha": config.alpha * rank / config.rank}


def lora_unet(model_path: Path, config: TrainingConfig, device: torch.device, precision: Precision) -> torch.nn.Module:
    """A fresh UNet from disk with a trainable LoRA on every linear layer of its transformer blocks."""
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig

    torch.manual_seed(config.seed)  # LoRA init is random (A) and zero (B): seed it
    unet = UNet2DConditionModel.from_pretrained(
        str(model_path), subfolder="unet", torch_dtype=precision.weight_dtype,
        variant=weights_variant(model_path / "unet"),  # a lean fp16 download has only the variant file
    )
    unet.requires_grad_(False)
    unet.to(device)
    unet.add_adapter(LoraConfig(**lora_size(unet, UNET_TARGETS, config), init_lora_weights="gaussian",
                                target_modules=UNET_TARGETS))
    _lora_params_to_fp32(unet)
    if use_gradient_checkpointing(config, device):
        unet.enable_gradient_checkpointing()
    prepare_unet_for_training(unet, device)
    unet.train()
    return unet


def prepare_unet_for_training(unet: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Make each training step cheaper without changing what it computes.

    - channels-last memory format: the convolutions (most of a UNet step) run in oneDNN's and cuDNN's
      preferred layout, without a layout conversion around every layer; measured ~0.8x the step time of
      the default layout on this CPU (see bench/train_bench.py);
    - PyTorch's fused scaled-dot-product attention in every attention layer (diffusers' default processor
      on torch 2, set explicitly so a model that came with another processor does not train slower);
    - on CUDA, cuDNN's autotuner: every step has the same shapes, so the fastest kernels are found once;
    - on the CPU, a better library kernel per shape for the frozen layers (``likeness.cpu_kernels``: the widest
      low-resolution convolutions as one matrix product, linear layers over many tokens on oneDNN).
    """
    from diffusers.models.attention_processor import AttnProcessor2_0

    from portrait_studio.likeness.cpu_kernels import use_faster_cpu_kernels

    unet.to(memory_format=torch.channels_last)
    processors = unet.attn_processors
    if any(type(p) is not AttnProcessor2_0 for p in processors.values()):
        unet.set_attn_processor(AttnProcessor2_0())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if device.type == "cpu":
        use_faster_cpu_kernels(unet)
    return unet


def lora_text_encoder(
    model_path: Path, config: TrainingConfig, device: torch.device, precision: Precision
) -> torch.nn.Module:
    from peft import LoraConfig
    from transformers import CLIPTextModel

    torch.manual_seed(config.seed + 1)
    encoder = CLIPTextModel.from_pretrained(
        str(model_path), subfolder="text_encoder", torch_dtype=precision.weight_dtype,
        variant=weights_variant(model_path / "text_encoder"),
    )
    encoder.requires_grad_(False)
    encoder.to(device)
    encoder.add_adapter(LoraConfig(**lora_size(encoder, TEXT_TARGETS, config), init_lora_weights="gaussian",
                                   target_modules=TEXT_TARGETS))
    _lora_params_to_fp32(encoder)
    encoder.train()
    return encoder


def _lora_params_to_fp32(model: torch.nn.Module) -> None:
    # Trainable LoRA weights stay fp32 under mixed precision (fp16 updates underflow).
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.float()


def trainable(model: torch.nn.Module | None) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad] if model is not None else []


def make_optimizer(groups: list[dict[str, Any]], config: TrainingConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; bitsandbytes' 8-bit AdamW on CUDA when it is installed (config 'auto') or asked for."""
    want_8bit = config.use_8bit_adam == "on" or (
        config.use_8bit_adam == "auto" and device.type == "cuda" and importlib.util.find_spec("bitsandbytes")
    )
    if want_8bit and device.type == "cuda":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(groups, weight_decay=1e-2)
    # One fused kernel for all LoRA matrices instead of a loop of small ops per tensor (CPU and CUDA).
    return torch.optim.AdamW(groups, weight_decay=1e-2, fused=device.type in ("cpu", "cuda"))


def lr_factor(config: TrainingConfig, step: int) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based), a pure function so resume is exact."""
    if config.lr_schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, config.steps) / config.steps))
    return 1.0


def step_generator(seed: int, step: int) -> torch.Generator:
    """Every step draws from its own generator: a resumed run repeats exactly what the first would do."""
    return torch.Generator("cpu").manual_seed((seed * 1_000_003 + step) % (2**63 - 1))
