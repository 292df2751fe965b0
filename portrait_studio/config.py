"""One settings object for the whole backend.

Every field can be set from the environment with the prefix ``PORTRAIT_STUDIO_`` (for example
``PORTRAIT_STUDIO_HOME``, ``PORTRAIT_STUDIO_PROFILE=tiny``, ``PORTRAIT_STUDIO_CACHE_GB=8``) and is
checked once by :meth:`Settings.validate`, which names the field that is wrong.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from portrait_studio.errors import InputError

ENV_PREFIX = "PORTRAIT_STUDIO_"
PROFILES = ("default", "tiny")
DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "float16", "bfloat16", "float32")
FACE_BACKENDS = ("auto", "facexlib", "dlib")
DEVICE_LEASES = ("auto", "on", "off")
LIMIT_FIELDS = ("max_body_kb", "max_prompt_chars", "max_upload_files", "max_upload_request_mb", "max_jobs_per_visitor",
                "max_disk_mb_per_visitor", "job_budget_seconds", "login_free_attempts", "public_max_steps",
                "public_max_size", "public_max_images", "public_max_frames", "public_max_audio_seconds")


def _default_home() -> Path:
    # Hugging Face Spaces mount persistent storage at /data; use it when it is there and writable.
    spaces_data = Path("/data")
    if os.environ.get("SPACE_ID") and spaces_data.is_dir() and os.access(spaces_data, os.W_OK):
        return spaces_data / "portrait_studio"
    return Path.home() / ".portrait_studio"


@dataclass
class Settings:
    home: Path = field(default_factory=_default_home)
    profile: str = "default"
    device: str = "auto"
    dtype: str = "auto"
    offline: bool = False
    # A public deployment (share link or Space): every visitor gets their own namespace.
    public: bool = False
    # Show the UI's "Download" buttons for missing weights on a public deployment too (always shown locally).
    public_downloads: bool = False
    face_backend: str = "auto"
    # Same-person similarity per face backend (similarity in [0, 1]; README "Faces" explains both values):
    # facexlib ArcFace IR-SE50 cosine 0.3, dlib 1 - distance/0.86 = 0.5 (dlib's documented 0.6 on raw descriptors).
    identity_threshold_facexlib: float = 0.3
    identity_threshold_dlib: float = 0.5
    # Limits that protect the machine and make errors predictable.
    max_upload_mb: int = 25
    max_image_pixels: int = 64_000_000
    min_photos: int = 5
    max_photos: int = 20
    max_audio_seconds: float = 60.0
    # Public deployments: most jobs waiting in the app's queue (more get "queue full"), and the age after
    # which uploads, per-request outputs and Gradio's cached files are deleted.
    queue_size: int = 32
    cleanup_after_hours: float = 24.0
    # Public deployments: per-request and per-visitor limits (ui/limits.py, ui/deploy.py; README "Public deployment").
    max_body_kb: int = 256  # JSON body of a call (uploads are counted separately)
    max_prompt_chars: int = 1000  # prompt and negative prompt, each (they also go into PNG metadata)
    max_upload_files: int = 30  # files in one upload request
    max_upload_request_mb: int = 120  # bytes of one upload request, all files together
    max_jobs_per_visitor: int = 3  # model jobs running + waiting per visitor
    max_disk_mb_per_visitor: int = 500  # a visitor's uploads + outputs
    job_budget_seconds: float = 600.0  # estimated run time of one model job on this device
    login_free_attempts: int = 3  # wrong passwords per client address before the delay starts (doubling)
    public_max_steps: int = 50
    public_max_size: int = 768
    public_max_images: int = 4
    public_max_frames: int = 24
    public_max_audio_seconds: float = 30.0
    # Model cache budget on the CPU (on CUDA the budget is derived from free memory).
    cache_gb: float = 12.0
    # GPU memory kept free for activations when the budget is derived from the device.
    working_reserve_gb: float = 2.0
    # One device lease across processes (training worker, app, CLI): auto = on a GPU, never on ZeroGPU.
    device_lease: str = "auto"
    # Per-role overrides: {"base": "some/hub-id" or "/local/path"}; env PORTRAIT_STUDIO_MODEL_<ROLE>.
    model_overrides: dict[str, str] = field(default_factory=dict)
    # Per-role hub revisions (a commit, tag or branch): {"base": "<commit>"}; env PORTRAIT_STUDIO_REVISION_<ROLE>.
    revision_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def tiny_dir(self) -> Path:
        return self.home / "tiny-models"

    @property
    def weights_dir(self) -> Path:
        """Weights that do not live on the Hugging Face hub (GitHub release files)."""
        return self.home / "weights"

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def outputs_dir(self) -> Path:
        return self.home / "outputs"

    @property
    def temp_dir(self) -> Path:
        return self.home / "tmp"

    def validate(self) -> Settings:
        def choice(name: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in allowed:
                raise InputError(
                    f"Setting '{name}' is {value!r}; expected one of {', '.join(allowed)} "
                    f"(env {ENV_PREFIX}{name.upper()})."
                )

        choice("profile", PROFILES)
        choice("device", DEVICES)
        choice("dtype", DTYPES)
        choice("face_backend", FACE_BACKENDS)
        choice("device_lease", DEVICE_LEASES)
        for name in ("max_upload_mb", "max_image_pixels", "min_photos", "max_photos", "queue_size", *LIMIT_FIELDS):
            if getattr(self, name) <= 0:
                raise InputError(f"Setting '{name}' must be positive, got {getattr(self, name)}.")
        if self.min_photos > self.max_photos:
            raise InputError(
                f"Setting 'min_photos' ({self.min_photos}) is larger than 'max_photos' ({self.max_photos})."
            )
        if self.cleanup_after_hours <= 0:
            raise InputError(f"Setting 'cleanup_after_hours' must be positive, got {self.cleanup_after_hours}.")
        for name in ("identity_threshold_facexlib", "identity_threshold_dlib"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise InputError(f"Setting '{name}' must be between 0 and 1, got {getattr(self, name)}.")
        if self.max_audio_seconds <= 0 or self.cache_gb <= 0 or self.working_reserve_gb < 0:
            raise InputError("Settings 'max_audio_seconds' and 'cache_gb' must be positive.")
        return self

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes).validate()

    def ensure_dirs(self) -> None:
        for path in (self.home, self.weights_dir, self.registry_dir, self.jobs_dir, self.outputs_dir, self.temp_dir):
            path.mkdir(parents=True, exist_ok=True)


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise InputError(f"Environment variable {ENV_PREFIX}{name.upper()}={raw!r} is not a boolean (use 1 or 0).")


def settings_from_env(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from ``PORTRAIT_STUDIO_*`` variables, then apply explicit overrides (CLI flags)."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for f in dataclasses.fields(Settings):
        key = ENV_PREFIX + f.name.upper()
        if key not in env or f.name in ("model_overrides", "revision_overrides"):
            continue
        raw = env[key]
        try:
            if f.name == "home":
                values[f.name] = Path(raw).expanduser()
            elif f.type in ("bool", bool):
                values[f.name] = _parse_bool(f.name, raw)
            elif f.type in ("int", int):
                values[f.name] = int(raw)
            elif f.type in ("float", float):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw.strip()
        except ValueError as exc:
            raise InputError(f"Environment variable {key}={raw!r} is not a valid {f.type}.") from exc
    model_prefix = ENV_PREFIX + "MODEL_"
    values["model_overrides"] = {
        key[len(model_prefix):].lower(): value for key, value in env.items() if key.startswith(model_prefix) and value
    }
    revision_prefix = ENV_PREFIX + "REVISION_"
    values["revision_overrides"] = {
        key[len(revision_prefix):].lower(): value.strip()
        for key, value in env.items() if key.startswith(revision_prefix) and value.strip()
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "home" in values:
        values["home"] = Path(values["home"]).expanduser()  # type: ignore[arg-type]
    return Settings(**values).validate()  # type: ignore[arg-type]
