"""What this machine has and which model roles are ready: the report behind ``doctor`` and the UI's
"About this machine".

Everything here only looks: no download, no tiny model is built, no weights are loaded (the smoke run
in :mod:`portrait_studio.models.smoke` does that, on request). Public deployments get the report without
the parts that describe the host (paths, versions, device names, memory), see :func:`public_view`.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from portrait_studio.config import Settings
from portrait_studio.errors import IncompleteWeightsError, MissingWeightsError
from portrait_studio.models import files as role_files
from portrait_studio.models.locator import RANDOM_WEIGHTS_MARKER, ModelLocator, download_command
from portrait_studio.models.roles import ROLES, HubSource, Role

# Role states, in the order a reader cares about them.
COMPLETE, PRESENT, RANDOM, INCOMPLETE, MISSING, TINY_UNBUILT = (
    "complete", "present", "random weights", "incomplete", "missing", "tiny, built on first use",
)


@dataclass
class MachineInfo:
    python: str
    torch: str
    device: str  # "cuda", "mps" or "cpu"
    device_name: str
    cuda: str | None = None  # CUDA runtime version torch was built with, when a GPU is used
    vram_gb: float | None = None
    native_bf16: bool | None = None
    dtype: str = "float32"
    ffmpeg: str | None = None
    espeak_ng: str | None = None


@dataclass
class RoleStatus:
    role: str
    group: str
    essential: bool
    state: str
    source: str
    missing_files: list[str] = field(default_factory=list)
    bytes_on_disk: int = 0
    revision: str | None = None
    download_mb: float = 0.0
    command: str = ""
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.state in (COMPLETE, PRESENT, RANDOM, TINY_UNBUILT)


@dataclass
class DoctorReport:
    profile: str
    machine: MachineInfo
    roles: list[RoleStatus]
    smoke: list[dict] = field(default_factory=list)

    def problems(self) -> list[str]:
        """One line per problem; empty when all is well."""
        lines = []
        if self.machine.ffmpeg is None:
            lines.append("ffmpeg: not found — videos (Animate, Talk) cannot be written; pip install imageio-ffmpeg")
        for status in self.roles:
            if status.state == INCOMPLETE:
                shown = ", ".join(status.missing_files[:3]) + (
                    f" and {len(status.missing_files) - 3} more" if len(status.missing_files) > 3 else ""
                )
                lines.append(f"{status.role}: {shown} missing — run `{status.command}`")
            elif status.state == MISSING:
                lines.append(f"{status.role}: missing ({size_text(status.download_mb)}) — run `{status.command}`")
        for tab in self.smoke:
            if tab.get("error"):
                lines.append(f"smoke {tab['tab']}: {tab['error']}")
        return lines

    def to_dict(self) -> dict:
        return {
            "profile": self.profile,
            "machine": asdict(self.machine),
            "roles": [asdict(s) for s in self.roles],
            "smoke": self.smoke,
            "talk_engine": asdict(talk_advice(self.machine)),
            "problems": self.problems(),
        }


def _tool_version(exe: str | None, flag: str = "-version") -> str | None:
    if not exe:
        return None
    try:
        out = subprocess.run([exe, flag], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else exe
    return first[:80]


def _ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        exe = shutil.which("ffmpeg")
    return _tool_version(exe)


def machine_info(settings: Settings) -> MachineInfo:
    import torch

    from portrait_studio.models.devices import pick_device, pick_dtype

    device = pick_device(settings.device)
    info = MachineInfo(
        python=platform.python_version(),
        torch=torch.__version__,
        device=device.type,
        device_name=platform.processor() or platform.machine(),
        dtype=str(pick_dtype(device, settings.dtype)).replace("torch.", ""),
        ffmpeg=_ffmpeg(),
        espeak_ng=_tool_version(shutil.which("espeak-ng"), "--version"),
    )
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.device_name = props.name
        info.cuda = torch.version.cuda
        info.vram_gb = round(props.total_memory / 2**30, 1)
        info.native_bf16 = bool(torch.cuda.is_bf16_supported(including_emulation=False))
    elif device.type == "mps":
        info.device_name = "Apple GPU (MPS)"
        info.native_bf16 = False
    else:
        info.native_bf16 = False
    return info


def _bytes_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def role_status(locator: ModelLocator, role: Role) -> RoleStatus:
    settings = locator.settings
    fp16 = locator.wants_fp16(role.name)
    status = RoleStatus(
        role=role.name, group=role.group, essential=role.essential, state=MISSING,
        source=locator.source_description(role.name), download_mb=role_files.download_mb(role, fp16),
        command=download_command(role.name),
    )
    if settings.profile == "tiny" and not settings.model_overrides.get(role.name):
        folder = settings.tiny_dir / role.name
        if (folder / RANDOM_WEIGHTS_MARKER).is_file():
            status.state, status.bytes_on_disk = RANDOM, _bytes_of(folder)
        else:
            status.state = TINY_UNBUILT
        status.download_mb = 0.0
        return status
    source = role.source
    if isinstance(source, HubSource):
        status.revision = settings.revision_overrides.get(role.name) or source.revision
    try:
        path = locator.path(role.name, download=False)
    except IncompleteWeightsError as exc:
        status.state, status.missing_files = INCOMPLETE, exc.missing
        return status
    except MissingWeightsError:
        return status
    status.revision = role_files.resolved_revision(path) or status.revision
    listed = role_files.required_files(role, fp16) if role_files.has_file_list(role) else None
    status.bytes_on_disk = _bytes_of(path)
    status.state = RANDOM if (path if path.is_dir() else path.parent).joinpath(RANDOM_WEIGHTS_MARKER).is_file() else (
        COMPLETE if listed else PRESENT
    )
    status.download_mb = 0.0
    return status


def build_report(settings: Settings, with_machine: bool = True) -> DoctorReport:
    """The report; ``with_machine=False`` skips probing the device and tools (public deployments: on ZeroGPU
    the main process must not initialise CUDA, and visitors see none of it anyway)."""
    locator = ModelLocator(settings)
    if with_machine:
        machine = machine_info(settings)
    else:
        from portrait_studio.models.devices import pick_device

        machine = MachineInfo(python="", torch="", device=pick_device(settings.device).type, device_name="",
                              ffmpeg="not probed")
    return DoctorReport(
        profile=settings.profile, machine=machine, roles=[role_status(locator, role) for role in ROLES.values()]
    )


def public_view(report: DoctorReport) -> dict:
    """What a visitor of a public deployment may see: which features are ready, nothing about the host."""
    return {
        "profile": report.profile,
        "accelerator": report.machine.device != "cpu",
        "roles": [{"role": s.role, "group": s.group, "ready": s.ready} for s in report.roles],
    }


def talk_advice(machine: MachineInfo):  # noqa: ANN201 - EngineAdvice
    from portrait_studio.talk.engine_choice import advise

    return advise(machine.device, machine.vram_gb)


def size_text(mb: float) -> str:
    return f"{mb / 1000:.2f} GB" if mb >= 1000 else f"{mb:.0f} MB" if mb >= 1 else "< 1 MB"


def format_table(report: DoctorReport) -> str:
    m = report.machine
    gpu = f"{m.device} ({m.device_name})"
    if m.vram_gb is not None:
        gpu += f", {m.vram_gb} GB VRAM, CUDA {m.cuda}"
    lines = [
        f"Python {m.python}   torch {m.torch}   profile {report.profile}",
        f"device     {gpu}; runs {m.dtype}; native bf16: {'yes' if m.native_bf16 else 'no'}",
        f"ffmpeg     {m.ffmpeg or 'NOT FOUND'}",
        f"espeak-ng  {m.espeak_ng or 'not found (only the tests use it)'}",
        f"talk       {talk_advice(m).engine} engine — {talk_advice(m).reason}",
        "",
        f"{'role':34} {'group':8} {'state':24} {'on disk':>9} {'to fetch':>9}  revision",
    ]
    for s in report.roles:
        on_disk = size_text(s.bytes_on_disk / 1e6) if s.bytes_on_disk else "-"
        fetch = size_text(s.download_mb) if s.download_mb else "-"
        state = s.state if s.state != INCOMPLETE else f"incomplete ({len(s.missing_files)} files)"
        lines.append(f"{s.role:34} {s.group:8} {state:24} {on_disk:>9} {fetch:>9}  {(s.revision or '-')[:12]}")
    if report.smoke:
        lines += ["", f"{'smoke':10} {'result':40} {'seconds':>8} {'peak MB':>9}"]
        for tab in report.smoke:
            result = tab.get("error") or tab.get("skipped") or tab.get("result", "ok")
            seconds = f"{tab['seconds']:.2f}" if tab.get("seconds") is not None else "-"
            peak = f"{tab['peak_mb']:.0f}" if tab.get("peak_mb") is not None else "-"
            lines.append(f"{tab['tab']:10} {result[:40]:40} {seconds:>8} {peak:>9}")
    return "\n".join(lines)
