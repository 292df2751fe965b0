"""Exactly which files each role needs, how large the published ones are, and whether a folder has them.

``allow_patterns`` such as ``*.safetensors`` pulled both the fp32 and the fp16 copy of a weight (the
ControlNet repos list a 723 MB fp16 file beside the 1.45 GB one), and a cached snapshot was trusted
without looking inside it. Here every hub snapshot role lists its files one by one; where the repo
publishes an fp16 variant and the device runs fp16, the variant file replaces the fp32 one (diffusers'
``variant="fp16"`` naming: ``<stem>.fp16.safetensors``).

Sizes are the published byte counts, rounded to MB, from the public repo and release listings. Only
those marked ``confirmed`` were checked against a public listing while writing this; the others are the
sizes we know from the files and may be off by a few MB (the README says which is which).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from portrait_studio.models.roles import HubSource, Role

MB = 1_000_000


@dataclass(frozen=True)
class RoleFile:
    """One file of a role: its path in the snapshot and its published size (MB); fp16 twin when published."""

    path: str
    mb: float
    fp16_mb: float | None = None  # set when the repo publishes ``<stem>.fp16.<ext>`` beside it
    confirmed: bool = False
    # Fetched with the role but not required to use it (loaders have defaults for what it holds).
    optional: bool = False

    def variant_path(self) -> str:
        stem, ext = self.path.rsplit(".", 1)
        return f"{stem}.fp16.{ext}"

    def chosen(self, fp16: bool) -> tuple[str, float]:
        if fp16 and self.fp16_mb is not None:
            return self.variant_path(), self.fp16_mb
        return self.path, self.mb


def _small(*paths: str) -> tuple[RoleFile, ...]:
    return tuple(RoleFile(p, 0.01) for p in paths)


# Hub snapshot roles: every file the loaders read, nothing else.
_SNAPSHOT_FILES: dict[str, tuple[RoleFile, ...]] = {
    "base": (
        *_small(
            "model_index.json",
            "scheduler/scheduler_config.json",
            "tokenizer/merges.txt",
            "tokenizer/tokenizer_config.json",
            "tokenizer/vocab.json",
            "text_encoder/config.json",
            "unet/config.json",
            "vae/config.json",
        ),
        # transformers 5 writes tokenizer.json instead; the SD1.5 repo has this one (fetched, not required).
        RoleFile("tokenizer/special_tokens_map.json", 0.01, optional=True),
        RoleFile("text_encoder/model.safetensors", 492, fp16_mb=246),
        RoleFile("unet/diffusion_pytorch_model.safetensors", 3438, fp16_mb=1719),
        RoleFile("vae/diffusion_pytorch_model.safetensors", 335, fp16_mb=167),
    ),
    "controlnet_canny": (
        *_small("config.json"),
        RoleFile("diffusion_pytorch_model.safetensors", 1445, fp16_mb=723, confirmed=True),
    ),
    "controlnet_openpose": (
        *_small("config.json"),
        RoleFile("diffusion_pytorch_model.safetensors", 1445, fp16_mb=723, confirmed=True),
    ),
    # No fp16 variant assumed: not confirmed in the repo listing, and a wrong guess would fail the download.
    "motion_adapter": (*_small("config.json"), RoleFile("diffusion_pytorch_model.safetensors", 1817)),
    # v3 and SparseCtrl sizes are estimates from parameter counts (fp32), not re-checked against a listing.
    "motion_adapter_v3": (*_small("config.json"), RoleFile("diffusion_pytorch_model.safetensors", 1672)),
    "sparsectrl_rgb": (*_small("config.json"), RoleFile("diffusion_pytorch_model.safetensors", 1990)),
    "sparsectrl_scribble": (*_small("config.json"), RoleFile("diffusion_pytorch_model.safetensors", 1990)),
    "ip_image_encoder": (
        *_small("models/image_encoder/config.json"), RoleFile("models/image_encoder/model.safetensors", 2530),
    ),
    "sadtalker": (
        RoleFile("SadTalker_V0.0.2_256.safetensors", 725),
        RoleFile("SadTalker_V0.0.2_512.safetensors", 725),
        RoleFile("mapping_00229-model.pth.tar", 156),
        RoleFile("mapping_00109-model.pth.tar", 156),
    ),
}

# Single-file roles (hub file or release URL): size of that one file.
_SINGLE_FILE_MB: dict[str, tuple[float, bool]] = {
    **{f"motion_lora_{m}": (78.0, False) for m in (
        "zoom_in", "zoom_out", "pan_left", "pan_right", "tilt_up", "tilt_down",
        "rolling_clockwise", "rolling_anticlockwise",
    )},
    "animatediff_lightning": (908.0, False),
    "domain_adapter_v3": (102.0, False),
    "ip_adapter_face": (98.2, False),
    "face_detection": (109.5, False),
    "face_parsing": (85.3, False),
    "face_recognition": (175.367323, True),
    "face_quality": (109.0, False),
    "gfpgan": (348.6, False),
    **{f"animegan_{s}": (8.6, False) for s in ("face_paint_512_v2", "face_paint_512_v1", "paprika", "celeba_distill")},
}

# Fast mode builds Lightning's module from the v1-5-2 adapter's config alone: no 1.8 GB weights for it.
CONFIG_ONLY = {"motion_adapter": ("config.json",)}
# Roles that need a part of another role: (that role, config only). Downloading one fetches the other part.
COMPANIONS = {"animatediff_lightning": ("motion_adapter", True)}


def has_file_list(role: Role) -> bool:
    return role.name in _SNAPSHOT_FILES


def required_files(role: Role, fp16: bool = False, config_only: bool = False) -> list[str]:
    """Paths (relative to the role's folder) the loaders read; empty for single-file roles."""
    if config_only and role.name in CONFIG_ONLY:
        return list(CONFIG_ONLY[role.name])
    return [f.chosen(fp16)[0] for f in _SNAPSHOT_FILES.get(role.name, ()) if not f.optional]


def fetched_files(role: Role, fp16: bool = False, config_only: bool = False) -> list[str]:
    """What a download of the role fetches: the required files and the optional ones."""
    if config_only and role.name in CONFIG_ONLY:
        return list(CONFIG_ONLY[role.name])
    return [f.chosen(fp16)[0] for f in _SNAPSHOT_FILES.get(role.name, ())]


def download_mb(role: Role, fp16: bool = False, config_only: bool = False) -> float:
    """Published download size of the role in MB (the files :func:`required_files` lists)."""
    if config_only and role.name in CONFIG_ONLY:
        return 0.01
    if role.name in _SNAPSHOT_FILES:
        return sum(f.chosen(fp16)[1] for f in _SNAPSHOT_FILES[role.name])
    return _SINGLE_FILE_MB.get(role.name, (0.0, False))[0]


def size_confirmed(role: Role) -> bool:
    if role.name in _SNAPSHOT_FILES:
        return all(f.confirmed for f in _SNAPSHOT_FILES[role.name] if f.mb >= 1)
    return _SINGLE_FILE_MB.get(role.name, (0.0, False))[1]


def publishes_fp16(role: Role) -> bool:
    return any(f.fp16_mb is not None for f in _SNAPSHOT_FILES.get(role.name, ()))


def missing_files(folder: Path, files: list[str]) -> list[str]:
    """The listed files that are not readable files under ``folder`` (a dangling cache symlink counts)."""
    return [name for name in files if not (folder / name).is_file()]


def missing_size_mb(role: Role, folder: Path | None, fp16: bool = False, config_only: bool = False) -> float:
    """MB still to fetch for ``role`` when ``folder`` (or nothing) is on disk."""
    if folder is None or role.name not in _SNAPSHOT_FILES:
        return download_mb(role, fp16, config_only) if folder is None else 0.0
    wanted = set(fetched_files(role, fp16, config_only))
    return sum(
        size for f in _SNAPSHOT_FILES[role.name]
        for path, size in [f.chosen(fp16)]
        if path in wanted and not (folder / path).is_file()
    )


def resolved_revision(path: Path) -> str | None:
    """The commit a Hugging Face cache path belongs to (``.../snapshots/<commit>/...``), else None."""
    parts = path.parts
    for index, part in enumerate(parts[:-1]):
        if part == "snapshots":
            return parts[index + 1]
    return None


def hub_allow_patterns(role: Role, source: HubSource, fp16: bool, config_only: bool = False) -> list[str] | None:
    """Exact file list for ``snapshot_download`` (or the source's own patterns for an override repo)."""
    files = fetched_files(role, fp16, config_only)
    if files:
        return files
    return list(source.allow_patterns) if source.allow_patterns else None


def weights_variant(component_dir: Path, prefer_fp16: bool = False) -> str | None:
    """The ``variant`` to pass to ``from_pretrained`` for one component folder (``<snapshot>/unet`` ...).

    A lean download on an fp16 device holds only ``*.fp16.safetensors``: every loader of the folder must then
    ask for the variant, or diffusers finds no weights. With both present, fp16 is used when preferred.
    """
    names = [p.name for p in component_dir.glob("*.safetensors")] if component_dir.is_dir() else []
    has_fp16 = any(".fp16." in name for name in names)
    has_plain = any(".fp16." not in name for name in names)
    return "fp16" if has_fp16 and (prefer_fp16 or not has_plain) else None
