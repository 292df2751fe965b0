"""Random-weight tiny models in the same on-disk format as the published ones.

They exist so that tests, CI and demos run the real loading and inference code in seconds on a CPU.
Their outputs are noise: every folder gets a ``RANDOM_WEIGHTS.json`` marker that the loaders report
upwards, so the UI can say so. Shapes follow diffusers' own AnimateDiff tests, one config serving
Stable Diffusion, ControlNet and the motion adapter alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from portrait_studio.models.roles import Role

# Shared by the UNet, the ControlNet and the motion adapter: they must agree on channels and depth.
UNET_BLOCKS = (16, 32)
LAYERS_PER_BLOCK = 2
NORM_GROUPS = 2
TEXT_DIM = 16
TINY_IMAGE_SIZE = 64  # default image side of the tiny pipeline (latent 32 x VAE factor 2)


def _bytes_to_unicode() -> list[str]:
    """The byte-level alphabet CLIP's BPE uses (printable stand-ins for all 256 bytes)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def write_clip_tokenizer(folder: Path) -> int:
    """Write a CLIP tokenizer with a byte-level vocabulary and no merges; return its vocab size.

    Every string tokenizes (one token per character), which is all a random text encoder needs.
    ``model_max_length=77`` matters: without it CLIPTokenizer pads to 1e30.
    """
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    alphabet = _bytes_to_unicode()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(tokens)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(str(folder))
    return len(tokens)


def tiny_unet_kwargs() -> dict:
    return dict(
        block_out_channels=UNET_BLOCKS,
        layers_per_block=LAYERS_PER_BLOCK,
        sample_size=TINY_IMAGE_SIZE // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=NORM_GROUPS,
    )


def build_sd15(folder: Path, role: Role | None = None) -> None:
    """A Stable Diffusion 1.5-format folder (model_index.json + component subfolders)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**tiny_unet_kwargs())
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=NORM_GROUPS,
        sample_size=TINY_IMAGE_SIZE,
    )
    staging_tok = folder / "tokenizer"
    vocab_size = write_clip_tokenizer(staging_tok)
    tokenizer = CLIPTokenizer.from_pretrained(str(staging_tok))
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=TEXT_DIM,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=vocab_size,
            max_position_embeddings=77,
            projection_dim=TEXT_DIM,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)


def build_controlnet(folder: Path, role: Role | None = None) -> None:
    """A ControlNet folder matching the tiny UNet (config.json + safetensors)."""
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    kwargs = tiny_unet_kwargs()
    for key in ("out_channels", "up_block_types", "sample_size"):
        kwargs.pop(key)
    controlnet = ControlNetModel(**kwargs, conditioning_embedding_out_channels=(8, 16))
    controlnet.save_pretrained(str(folder), safe_serialization=True)


def build_motion_adapter(folder: Path, role: Role | None = None) -> None:
    """An AnimateDiff MotionAdapter folder whose blocks match the tiny UNet."""
    from diffusers import MotionAdapter

    torch.manual_seed(0)
    adapter = MotionAdapter(
        block_out_channels=UNET_BLOCKS,
        motion_layers_per_block=LAYERS_PER_BLOCK,
        motion_norm_num_groups=NORM_GROUPS,
        motion_num_attention_heads=4,
    )
    adapter.save_pretrained(str(folder), safe_serialization=True)


def make_tiny(target: Path, roles: list[str] | None = None) -> list[str]:
    """Write tiny models for ``roles`` (default: all) under ``target/<role>``; return the names built."""
    from portrait_studio.models.locator import build_tiny_role
    from portrait_studio.models.roles import ROLES

    names = roles or list(ROLES)
    for name in names:
        build_tiny_role(ROLES[name], target / name)
    return names


def _tiny_motion_adapter_kwargs() -> dict:
    return dict(
        block_out_channels=UNET_BLOCKS,
        motion_layers_per_block=LAYERS_PER_BLOCK,
        motion_norm_num_groups=NORM_GROUPS,
        motion_num_attention_heads=4,
    )


def _motion_attention_projections() -> dict[str, tuple[int, int]]:
    """``{module name: (in_features, out_features)}`` of every motion-module attention projection
    (to_q/to_k/to_v/to_out.0 of attn1 and attn2) in the tiny UNet + motion adapter."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**tiny_unet_kwargs())
        adapter = MotionAdapter(**_tiny_motion_adapter_kwargs())
    motion_unet = UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)
    projections = {}
    for name, module in motion_unet.named_modules():
        if ".motion_modules." in name and isinstance(module, torch.nn.Linear):
            if name.endswith((".to_q", ".to_k", ".to_v", ".to_out.0")):
                projections[name] = (module.in_features, module.out_features)
    return projections


def build_motion_lora(folder: Path, role: Role | None = None) -> None:
    """An AnimateDiff camera-motion LoRA in the format of the ``guoyww/animatediff-motion-lora-*`` repos.

    Those files are the original AnimateDiff MotionLoRA checkpoints run through diffusers'
    ``convert_animatediff_motion_lora_to_diffusers`` script: ``temporal_transformer.`` dropped,
    ``attention_blocks.0/1`` renamed ``attn1/attn2``, everything prefixed ``unet.``, and the LoRA kept in
    the old attention-processor grammar that ``load_lora_weights`` still converts to peft::

        unet.<block>.motion_modules.<i>.transformer_blocks.0.attn<1|2>.processor.to_<q|k|v|out>_lora.<down|up>.weight

    with ``down`` of shape (rank, in) and ``up`` of shape (out, rank). Each motion gets its own seed, so
    different motions change the output differently.
    """
    import zlib

    from safetensors.torch import save_file

    name = role.name if role else "motion_lora"
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    rank = 4
    tensors: dict[str, torch.Tensor] = {}
    for module_name, (in_features, out_features) in sorted(_motion_attention_projections().items()):
        parent, projection = module_name.rsplit(".to_", 1)
        stem = f"unet.{parent}.processor.to_{projection.split('.')[0]}_lora"
        # Random (not zero) up-projections so the tiny LoRA visibly changes the output.
        tensors[f"{stem}.down.weight"] = torch.randn(rank, in_features, generator=generator) * 0.5
        tensors[f"{stem}.up.weight"] = torch.randn(out_features, rank, generator=generator) * 0.5
    filename = role.tiny_path if role and role.tiny_path else "diffusion_pytorch_model.safetensors"
    save_file(tensors, str(folder / filename))


def build_motion_adapter_weights(folder: Path, role: Role | None = None) -> None:
    """A bare MotionAdapter state dict in one safetensors file, like ByteDance's AnimateDiff-Lightning
    ``animatediff_lightning_4step_diffusers.safetensors`` (no config: it is the v1-5-2 architecture)."""
    from diffusers import MotionAdapter
    from safetensors.torch import save_file

    torch.manual_seed(1)
    adapter = MotionAdapter(**_tiny_motion_adapter_kwargs())
    filename = role.tiny_path if role and role.tiny_path else "motion_adapter.safetensors"
    save_file({k: v.contiguous() for k, v in adapter.state_dict().items()}, str(folder / filename))
