"""The Talk service: portrait + speech -> MP4 of the face speaking, with head, eye and expression motion."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.media.audio import decode_audio, write_wav
from portrait_studio.media.video import stream_mp4
from portrait_studio.models.manager import ModelManager
from portrait_studio.models.process_cache import process_manager
from portrait_studio.progress import CancelToken, ProgressFn, no_progress, scaled
from portrait_studio.talk import compose
from portrait_studio.talk.audio_features import SAMPLES_PER_FRAME, audio_features
from portrait_studio.talk.config import EXP_DIM, FPS
from portrait_studio.talk.engine import TalkNets, render_frames, talk_nets
from portrait_studio.talk.motion import blink_ratios, predict_expression, predict_pose, smooth_pose
from portrait_studio.talk.preprocess import SourceFace, find_face, prepare_source
from portrait_studio.talk.reference_motion import ReferenceMotion, check_reference_video
from portrait_studio.talk.reference_recon import load_reference_pose_coefficients

MODES = ("crop", "full")
SIZES = (256, 512)
POSE_STYLES = 46
ENGINES = ("sadtalker", "aniportrait")  # 3DMM + warping renderer (fast); audio -> face mesh -> video diffusion
MAX_STEPS = 100


@dataclass(frozen=True)
class TalkOptions:
    still: bool = False  # keep the source head pose (no head motion), only expression and lips
    expression_scale: float = 1.0
    pose_style: int = 0  # one of the 46 learned head-motion styles
    mode: str = "crop"  # "crop": the face crop; "full": pasted back into the whole portrait
    size: int = 256  # renderer: 256 or 512
    enhance: bool = False  # GFPGAN face restoration of every frame
    seed: int | None = 0  # head motion and blinks are sampled; None = a fresh draw every time
    blink: bool = True
    engine: str = "sadtalker"
    steps: int = 25  # AniPortrait's denoising steps (the reference's default)
    # A video of someone whose head motion and blinks the portrait copies (relative to the video's first
    # frame). It replaces the head motion from speech, so ``still`` and ``pose_style`` do not apply. Both
    # engines: AniPortrait reads the pose from dlib's points, SadTalker from face_3drecon (as its --ref_pose).
    reference_video: Path | None = None

    def validate(self) -> TalkOptions:
        if self.engine not in ENGINES:
            raise InputError(f"Talk engine {self.engine!r} is not one of {', '.join(ENGINES)}.")
        if not 1 <= self.steps <= MAX_STEPS:
            raise InputError(f"Denoising steps {self.steps} must be between 1 and {MAX_STEPS}.")
        if self.mode not in MODES:
            raise InputError(f"Talk mode {self.mode!r} is not one of {', '.join(MODES)}.")
        if self.size not in SIZES:
            raise InputError(f"Renderer size {self.size} is not one of {', '.join(map(str, SIZES))}.")
        if not 0 <= self.pose_style < POSE_STYLES:
            raise InputError(f"Pose style {self.pose_style} must be between 0 and {POSE_STYLES - 1}.")
        if not 0.0 <= self.expression_scale <= 3.0:
            raise InputError(f"Expression scale {self.expression_scale} must be between 0 and 3.")
        return self


@dataclass
class TalkResult:
    video_path: Path
    duration: float
    frames: int
    random_weights: bool
    warnings: list[str] = field(default_factory=list)


def talk(
    portrait: Image.Image,
    audio_path: Path,
    out_path: Path,
    settings: Settings,
    options: TalkOptions | None = None,
    manager: ModelManager | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> TalkResult:
    """Animate ``portrait`` speaking ``audio_path``; write an H.264 MP4 with the audio to ``out_path``."""
    options = (options or TalkOptions()).validate()
    cancel = cancel or CancelToken()
    warnings: list[str] = []
    progress(0.0, "reading audio")
    audio = decode_audio(Path(audio_path), settings.max_audio_seconds)
    cancel.raise_if_cancelled()
    manager = manager or process_manager(settings)
    if options.enhance:
        _check_enhancer(manager)
    if options.engine == "aniportrait":
        return _talk_aniportrait(portrait, audio.samples, Path(out_path), settings, options, manager, progress,
                                 cancel)
    mels, frames = audio_features(audio.samples)
    progress(0.03, "finding the face")
    points = find_face(portrait, settings)
    if options.reference_video is not None:  # its header, before the models load: a bad file fails fast
        check_reference_video(Path(options.reference_video), settings)
    progress(0.05, "loading models")
    with talk_nets(manager, options.size, options.mode) as nets:
        source = prepare_source(portrait, points, options.size, nets.face_3drecon, nets.device)
        cancel.raise_if_cancelled()
        motion = None
        if options.reference_video is not None:
            motion = load_reference_pose_coefficients(Path(options.reference_video), frames, settings,
                                                      nets.face_3drecon, nets.device, scaled(progress, 0.05, 0.1),
                                                      cancel)
        progress(0.1, "predicting motion from speech")
        coeffs = _motion_coefficients(nets, mels, source, options, motion)
        cancel.raise_if_cancelled()
        source_coeffs = source.coeffs if options.mode == "full" else source.coeffs[:70]
        rendered = list(
            render_frames(nets, np.asarray(source.crop), source_coeffs, coeffs, scaled(progress, 0.15, 0.85), cancel)
        )
    video_frames = compose.finish_frames(rendered, portrait, source.box, options.mode)
    if options.enhance:
        video_frames = compose.enhance_frames(video_frames, frames, settings, scaled(progress, 0.85, 0.95), cancel)
    random_weights = nets.random_weights or (options.enhance and compose.enhancer_is_random(manager))
    if random_weights:
        warnings.append("The talk models have random weights (test profile): the video is noise, not a result.")
    progress(0.85, "writing video")
    out_path = Path(out_path)
    settings.temp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.temp_dir, prefix="talk-") as tmp:
        wav = write_wav(audio.samples[: frames * SAMPLES_PER_FRAME], Path(tmp) / "speech.wav")
        stream_mp4(video_frames, out_path, FPS, audio_path=wav)
    progress(1.0, "done")
    return TalkResult(out_path, frames / FPS, frames, random_weights, warnings)


def _talk_aniportrait(portrait: Image.Image, samples: np.ndarray, out_path: Path, settings: Settings,
                      options: TalkOptions, manager: ModelManager, progress: ProgressFn,
                      cancel: CancelToken) -> TalkResult:
    from portrait_studio.talk.aniportrait.speech import FPS as ANIPORTRAIT_FPS
    from portrait_studio.talk.aniportrait.talk import talk_aniportrait

    frames, random_weights = talk_aniportrait(portrait, samples, out_path, settings, options, manager, progress,
                                              cancel)
    random_weights = random_weights or (options.enhance and compose.enhancer_is_random(manager))
    warnings = ["The talk models have random weights (test profile): the video is noise, not a result."] \
        if random_weights else []
    progress(1.0, "done")
    return TalkResult(out_path, frames / ANIPORTRAIT_FPS, frames, random_weights, warnings)


def _motion_coefficients(nets: TalkNets, mels: np.ndarray, source: SourceFace, options: TalkOptions,
                         motion: ReferenceMotion | None = None) -> np.ndarray:
    """(frames, 70) expression + pose, or (frames, 73) with the crop parameters in full mode. A reference
    video's ``motion`` gives the blinks and the pose (the source's plus the video's relative pose)."""
    device = nets.device
    frames = mels.shape[0]
    rng = np.random.default_rng(options.seed)
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**31 - 1)))
    mel_t = torch.from_numpy(mels)[None, :, None].to(device)
    src = torch.from_numpy(source.coeffs)[None].to(device)
    blink = blink_ratios(frames, rng) if options.blink else np.zeros((frames, 1), np.float32)
    if motion is not None:
        blink = motion.blinks[:frames, None].astype(np.float32)
    exp = predict_expression(nets.audio2exp, mel_t, src[:, :EXP_DIM], torch.from_numpy(blink)[None].to(device))
    exp = exp[0].cpu().numpy() * options.expression_scale
    if motion is not None:
        pose = source.coeffs[None, EXP_DIM:70] + motion.poses[:frames]
    elif options.still:
        pose = np.repeat(source.coeffs[None, EXP_DIM:70], frames, axis=0)
    else:
        pose = predict_pose(nets.audio2pose, mel_t, src[:, EXP_DIM:70], options.pose_style, generator)
        pose = smooth_pose(pose[0].cpu().numpy())
    coeffs = np.concatenate([exp, pose], axis=1)
    if options.mode == "full":
        coeffs = np.concatenate([coeffs, np.repeat(source.coeffs[None, 70:], frames, axis=0)], axis=1)
    return coeffs.astype(np.float32)


def _check_enhancer(manager: ModelManager) -> None:
    if not compose.enhancer_available():
        raise InputError("Face enhancement is not available in this installation (GFPGAN is missing).")
    problems = manager.check_available(["gfpgan"])
    if problems and manager.settings.offline:
        raise MissingWeightsError("gfpgan", "GFPGANv1.4.pth", "python -m portrait_studio download --roles gfpgan",
                                  "needed for --enhance")
