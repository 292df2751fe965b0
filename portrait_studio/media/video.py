"""Video files: H.264 MP4 that browsers play, looping GIF, and a probe to check what was written.

MP4s are H.264 in yuv420p (the pixel format every browser decodes) with ``+faststart`` (index at the
front, so playback starts before the download ends), encoded by the ffmpeg binary that ships in the
imageio-ffmpeg wheel. Every file is written to a temp file beside the target and renamed into place, so
a crash or a cancel never leaves a half-written video.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from portrait_studio.errors import InputError
from portrait_studio.media.outputs import AI_LABEL

Frame = np.ndarray | Image.Image
# Every video we write says it is AI-generated, in the container's own metadata (ffprobe shows it).
AI_METADATA = ["-metadata", f"comment={AI_LABEL}", "-metadata", "description=AI-generated"]


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int
    duration: float
    codec: str
    pix_fmt: str
    has_audio: bool


def _as_rgb_arrays(frames: Sequence[Frame]) -> list[np.ndarray]:
    if not frames:
        raise InputError("There are no frames to write.")
    arrays = []
    for frame in frames:
        array = np.asarray(frame.convert("RGB")) if isinstance(frame, Image.Image) else np.asarray(frame)
        if array.ndim != 3 or array.shape[2] != 3:
            raise InputError(f"Frames must be RGB images (height x width x 3), got shape {array.shape}.")
        arrays.append(np.ascontiguousarray(array, dtype=np.uint8))
    size = arrays[0].shape
    if any(a.shape != size for a in arrays):
        raise InputError("All frames of a video must have the same size.")
    return arrays


def _even(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """yuv420p needs even width and height: pad one edge row/column by repetition when odd."""
    h, w = arrays[0].shape[:2]
    pad = ((0, h % 2), (0, w % 2), (0, 0))
    return arrays if pad == ((0, 0), (0, 0), (0, 0)) else [np.pad(a, pad, mode="edge") for a in arrays]


@contextmanager
def _atomic_target(path: Path, suffix: str) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _h264_writer(tmp: Path, width: int, height: int, fps: float, audio_path: Path | None) -> Any:
    """An imageio-ffmpeg frame sink writing browser-playable H.264 (+ AAC audio when given)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.write_frames(
        str(tmp), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=None,
        macro_block_size=1, ffmpeg_log_level="error",
        output_params=["-crf", "18", "-preset", "medium", "-movflags", "+faststart", *AI_METADATA]
        + (["-shortest"] if audio_path else []),
        audio_path=str(audio_path) if audio_path else None, audio_codec="aac" if audio_path else None,
    )


def write_mp4(frames: Sequence[Frame], path: Path, fps: float, audio_path: Path | None = None) -> Path:
    """Encode ``frames`` (RGB arrays or PIL images) as H.264/yuv420p MP4 at ``fps``; mux ``audio_path`` as AAC."""

    if not 0 < fps <= 120:
        raise InputError(f"Frames per second must be between 0 and 120, got {fps}.")
    if audio_path is not None and not Path(audio_path).is_file():
        raise InputError(f"Audio file {Path(audio_path).name} not found.")
    arrays = _even(_as_rgb_arrays(frames))
    height, width = arrays[0].shape[:2]
    path = Path(path)
    with _atomic_target(path, ".mp4") as tmp:
        writer = _h264_writer(tmp, width, height, fps, audio_path)
        writer.send(None)  # start ffmpeg
        try:
            for array in arrays:
                writer.send(array)
        finally:
            writer.close()
    return path


def write_gif(frames: Sequence[Frame], path: Path, fps: float) -> Path:
    """A looping GIF at ``fps`` (GIF delays are in 1/100 s, so the rate is rounded to that)."""
    if not 0 < fps <= 50:
        raise InputError(f"GIF frames per second must be between 0 and 50, got {fps}.")
    images = [Image.fromarray(a) for a in _as_rgb_arrays(frames)]
    duration_ms = max(20, int(round(100 / fps)) * 10)
    path = Path(path)
    with _atomic_target(path, ".gif") as tmp:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0, optimize=False,
            disposal=1, comment=AI_LABEL.encode(),
        )
    return path


# What reading a header raises for a file that is no video: ffmpeg's own errors, an empty stream, and
# imageio-ffmpeg's log parser failing on a file without a video stream (IndexError/ValueError).
_UNREADABLE = (OSError, RuntimeError, StopIteration, ValueError, IndexError)


def _header_meta(path: Path) -> dict:
    """The header imageio-ffmpeg parses from ffmpeg's log (nothing decoded); raises one of ``_UNREADABLE``."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        return next(reader)
    finally:
        reader.close()


def probe_video(path: Path) -> VideoInfo:
    """Frame count, rate, size, codec and pixel format of a video file (decodes it once to count frames)."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise InputError(f"Video file {path.name} not found.")
    try:
        meta = _header_meta(path)
        count, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    except _UNREADABLE as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]  # StopIteration says nothing
        raise InputError(f"{path.name} is not a readable video ({first_line[:120]}).") from exc
    codec_text = str(meta.get("codec", ""))
    width, height = meta.get("size", (0, 0))
    return VideoInfo(
        frames=int(count),
        fps=float(meta.get("fps", 0.0)),
        width=int(width),
        height=int(height),
        duration=float(seconds),
        codec=codec_text.split()[0] if codec_text else "",
        pix_fmt=str(meta.get("pix_fmt", "")).split("(")[0].strip(),
        has_audio=_has_audio_stream(path),
    )


def _has_audio_stream(path: Path) -> bool:
    import subprocess

    import imageio_ffmpeg

    # ffmpeg with only an input prints the stream list on stderr (and exits 1: no output given).
    run = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, timeout=60
    )
    return any(line.strip().startswith("Stream #") and ": Audio:" in line for line in run.stderr.splitlines())


def stream_mp4(
    frames: Iterable[Frame], path: Path, fps: float, audio_path: Path | None = None, count_hint: int = 0
) -> int:
    """Like :func:`write_mp4` but encodes frames as they come (long videos never sit in memory at once).

    Returns the number of frames written. All frames must share the first frame's size.
    """

    if not 0 < fps <= 120:
        raise InputError(f"Frames per second must be between 0 and 120, got {fps}.")
    if audio_path is not None and not Path(audio_path).is_file():
        raise InputError(f"Audio file {Path(audio_path).name} not found.")
    iterator = iter(frames)
    try:
        first = _even(_as_rgb_arrays([next(iterator)]))[0]
    except StopIteration:
        raise InputError("There are no frames to write.") from None
    height, width = first.shape[:2]
    path = Path(path)
    written = 0
    with _atomic_target(path, ".mp4") as tmp:
        writer = _h264_writer(tmp, width, height, fps, audio_path)
        writer.send(None)
        try:
            writer.send(first)
            written = 1
            for frame in iterator:
                array = _even(_as_rgb_arrays([frame]))[0]
                if array.shape != first.shape:
                    raise InputError("All frames of a video must have the same size.")
                writer.send(array)
                written += 1
        finally:
            writer.close()
    return written


@dataclass(frozen=True)
class VideoHeader:
    fps: float  # 0 when the container does not say
    width: int  # of the decoded (upright) frames
    height: int
    duration: float  # seconds; 0 when the container does not say


def read_header(path: Path, name: str | None = None) -> VideoHeader:
    """A video file's rate, size and duration from its header (nothing is decoded): ``InputError`` naming the
    file when it is missing or not a video ffmpeg can read."""

    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise InputError(f"Video file {name} not found.")
    try:
        meta = _header_meta(path)
    except _UNREADABLE as exc:
        raise InputError(f"{name} is not a readable video: use an MP4, MOV, WebM or MKV file.") from exc
    width, height = meta.get("size", (0, 0))
    if width <= 0 or height <= 0:
        raise InputError(f"{name} has no picture: use a video with a visible face.")
    return VideoHeader(float(meta.get("fps") or 0.0), int(width), int(height), float(meta.get("duration") or 0.0))


class _ScaledSizeNotice(logging.Filter):
    """imageio-ffmpeg warns whenever the frames it reads differ in size from the stream's: we scale on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is different from the source frame size" not in record.getMessage()


logging.getLogger("imageio_ffmpeg").addFilter(_ScaledSizeNotice())


def read_frames(path: Path, fps: float, max_side: int, seconds: float | None = None,
                name: str | None = None, header: VideoHeader | None = None) -> Iterator[np.ndarray]:
    """Decode a video as (h, w, 3) uint8 RGB frames at ``fps`` (ffmpeg's fps filter: frames are repeated or
    dropped, which also evens out variable frame rates), scaled down so the long side is at most ``max_side``,
    stopping after ``seconds``. Phone videos come out upright (ffmpeg applies the rotation tag). ``header``:
    the file's header when the caller has read it already (each read starts ffmpeg)."""
    import imageio_ffmpeg

    header = header or read_header(path, name)
    scale = min(1.0, max_side / max(header.width, header.height))
    # even sizes, as ffmpeg's scaler rounds them; imageio-ffmpeg reads the size ffmpeg reports after the filter
    width, height = (max(2, int(round(v * scale / 2)) * 2) for v in (header.width, header.height))
    filters = f"fps={fps:g},scale={width}:{height}"
    input_params = ["-t", f"{seconds:.3f}"] if seconds is not None else []
    reader = imageio_ffmpeg.read_frames(str(path), input_params=input_params, output_params=["-vf", filters])
    try:
        meta = next(reader)
        w, h = meta["size"]
        for raw in reader:
            yield np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
    except (OSError, RuntimeError) as exc:
        raise InputError(f"{name or Path(path).name} could not be decoded to the end: it may be damaged.") from exc
    finally:
        reader.close()
