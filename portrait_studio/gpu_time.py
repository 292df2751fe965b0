"""How many seconds of GPU one request asks ZeroGPU for: a pure function of the request's size.

ZeroGPU checks the requested ``duration`` against the visitor's remaining daily quota *before* the call
runs (about 120 s a day without an account, 210 s with a free one) and refuses the call when it does not
fit; only the time really used is charged. So we ask for what this request needs, not a fixed worst case:
work units (image-steps, frame-steps, seconds of audio) times a per-unit cost, plus a fixed part, times a
safety margin, never below a floor. One call may ask at most 300 s: a request that would need more is
refused up front, naming the setting to lower.

The per-unit costs are *estimates* for an H200 slice in float16 (ZeroGPU's hardware), derived from public
figures for Stable Diffusion 1.5 on A100-class cards (about 20 denoising steps a second at 512 px with
classifier-free guidance) and kept on the slow side; the margin covers the rest. The app logs the real
seconds of every call (``gpu-slot end task=... seconds=...``): recalibrate the constants from those lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from portrait_studio.errors import InputError
from portrait_studio.talk.config import FPS as SADTALKER_FPS  # a constants module: no torch

MAX_CALL_SECONDS = 300  # ZeroGPU's cap for one call
DEFAULT_REQUEST_TARGET = 60  # every tab at default settings stays under this (two requests per anonymous day)
FLOOR_SECONDS = 20  # attaching the GPU slice, the CUDA context and first kernels; also guards tiny estimates
MARGIN = 1.5  # estimates are not measurements: ask for half again

BASE_PIXELS = 512 * 512  # the per-step costs below are for this size; cost scales with pixel count
FIXED_SECONDS = 3.0  # per call: prompt encoding, scheduler set-up, copying results back
SD_STEP_SECONDS = 0.06  # one image, one denoising step at 512 px, guidance on (UNet twice)
CONTROLNET_STEP_FACTOR = 1.4  # a ControlNet runs beside the UNet on every step
VAE_DECODE_SECONDS = 0.05  # one 512 px image
RESTORE_IMAGE_SECONDS = 0.3  # GFPGAN plus face detection and paste-back, one image
SCORE_IMAGE_SECONDS = 0.2  # face detection and identity embedding for best-of-N, one image
MOTION_FRAME_STEP_SECONDS = 0.07  # AnimateDiff: one frame, one step at 512 px, motion modules included
FRAME_WRITE_SECONDS = 0.05  # MP4 + GIF + PNG of one frame (CPU work inside the call)
TALK_FIXED_SECONDS = 5.0  # SadTalker: face crop, 3DMM reconstruction, audio features
TALK_AUDIO_SECOND_256 = 1.0  # renderer at 256 px, SADTALKER_FPS frames per second of audio
TALK_512_FACTOR = 4.0  # the 512 px renderer has four times the pixels
TALK_ENHANCE_AUDIO_SECOND = 0.75  # GFPGAN on 25 frames
TALK_FULL_AUDIO_SECOND = 0.2  # pasting 25 frames back into the full picture
ANIPORTRAIT_FPS = 30  # the engine renders at the reference's 30 fps (speech.FPS; that module imports torch)
ANIPORTRAIT_FRAME_STEP_SECONDS = 0.1  # UNet + motion module + reference attention: one frame, one step, 512 px
ANIPORTRAIT_WINDOW_OVERLAP = 1.25  # overlapping 16-frame windows denoise about a quarter of the frames twice
# A reference video: decoding and dlib's face detection + 68 points run on the CPU inside the call, one video
# frame per output frame (measured 20 ms a 640 px frame on our 2-core test machine; kept on the slow side).
REFERENCE_FRAME_SECONDS = 0.04
PHOTO_CHECK_SECONDS = 0.5  # detection, landmarks, parsing, identity and quality of one photo
ANIME_SECONDS = 2.0  # one AnimeGANv2 pass with the face crop


@dataclass(frozen=True)
class GpuRequest:
    """What one call needs: the seconds to ask for and, for messages, what the work is."""

    seconds: int
    work: str


def _ask(raw_seconds: float) -> int:
    return max(FLOOR_SECONDS, math.ceil(raw_seconds * MARGIN))


def _check_cap(task: str, seconds: int, work: str, lower: str) -> GpuRequest:
    if seconds > MAX_CALL_SECONDS:
        raise InputError(
            f"{task} of {work} needs about {seconds} s of GPU time, but one call on this ZeroGPU Space may use "
            f"at most {MAX_CALL_SECONDS} s. Lower {lower} and try again."
        )
    return GpuRequest(seconds, work)


def stylize_request(images: int, steps: int, width: int, height: int, *, template: bool = False,
                    control: bool = False, restore: bool = False, best_of: bool = False) -> GpuRequest:
    """Stylize: ``images`` × ``steps`` at ``width`` × ``height``; a template repaints in two passes."""
    scale = width * height / BASE_PIXELS
    passes = 2 if template else 1  # face pass, then the blend band (at most the same steps)
    step = SD_STEP_SECONDS * (CONTROLNET_STEP_FACTOR if control else 1.0)
    per_image = passes * steps * step * scale + passes * VAE_DECODE_SECONDS * scale
    per_image += (RESTORE_IMAGE_SECONDS if restore else 0.0) + (SCORE_IMAGE_SECONDS if best_of else 0.0)
    seconds = _ask(FIXED_SECONDS + images * per_image)
    work = f"{images} image(s) × {steps} steps at {width}×{height}" + (" (template, two passes)" if template else "")
    return _check_cap("Stylize", seconds, work, "Images, Steps or the size (Advanced)")


def animate_request(frames: int, steps: int, width: int, height: int) -> GpuRequest:
    """Animate: ``frames`` × ``steps`` at ``width`` × ``height`` (a portrait start runs fewer steps: ignored)."""
    scale = width * height / BASE_PIXELS
    per_frame = steps * MOTION_FRAME_STEP_SECONDS * scale + VAE_DECODE_SECONDS * scale + FRAME_WRITE_SECONDS
    seconds = _ask(FIXED_SECONDS + frames * per_frame)
    return _check_cap("Animate", seconds, f"{frames} frames × {steps} steps at {width}×{height}",
                      "Frames or Steps (Advanced), or turn on Fast")


def talk_request(audio_seconds: float, renderer: int = 256, *, enhance: bool = False,
                 full: bool = False, engine: str = "sadtalker", steps: int = 25,
                 reference_video: bool = False) -> GpuRequest:
    """Talk: ``audio_seconds`` of speech rendered at ``renderer`` px by ``engine``."""
    if engine == "aniportrait":
        scale = renderer * renderer / BASE_PIXELS
        frames = audio_seconds * ANIPORTRAIT_FPS
        per_frame = steps * ANIPORTRAIT_FRAME_STEP_SECONDS * scale * ANIPORTRAIT_WINDOW_OVERLAP
        per_frame += VAE_DECODE_SECONDS * scale + FRAME_WRITE_SECONDS
        per_frame += REFERENCE_FRAME_SECONDS if reference_video else 0.0
        seconds = _ask(TALK_FIXED_SECONDS + frames * per_frame)
        return _check_cap("Talk (AniPortrait)", seconds,
                          f"{audio_seconds:.1f} s of speech × {steps} steps at {renderer} px",
                          "the denoising steps or the renderer size, use shorter speech, or choose SadTalker")
    per_second = TALK_AUDIO_SECOND_256 * (TALK_512_FACTOR if renderer >= 512 else 1.0)
    per_second += (TALK_ENHANCE_AUDIO_SECOND if enhance else 0.0) + (TALK_FULL_AUDIO_SECOND if full else 0.0)
    per_second += SADTALKER_FPS * REFERENCE_FRAME_SECONDS if reference_video else 0.0  # face_3drecon: ~ms a frame
    seconds = _ask(TALK_FIXED_SECONDS + audio_seconds * per_second)
    return _check_cap("Talk", seconds, f"{audio_seconds:.1f} s of speech at {renderer} px",
                      "the renderer size, turn off Enhance face, or use shorter speech")


def photo_check_request(photos: int) -> GpuRequest:
    seconds = _ask(FIXED_SECONDS + photos * PHOTO_CHECK_SECONDS)
    return _check_cap("The photo check", seconds, f"{photos} photo(s)", "the number of photos")


def anime_request() -> GpuRequest:
    return GpuRequest(_ask(FIXED_SECONDS + ANIME_SECONDS), "one picture")


def longest_speech_within(limit_seconds: int, renderer: int = 256, *, enhance: bool = False,
                          full: bool = False) -> float:
    """The longest speech (whole seconds) whose Talk request asks at most ``limit_seconds``."""
    limit_seconds = min(limit_seconds, MAX_CALL_SECONDS)
    audio = 0.0
    while talk_request(audio + 1, renderer, enhance=enhance, full=full).seconds <= limit_seconds:
        audio += 1
    return audio
