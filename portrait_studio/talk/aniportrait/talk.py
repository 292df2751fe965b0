"""Talk with the AniPortrait engine: portrait + speech -> H.264 MP4 at 30 fps with the speech.

Steps: dlib's 68 landmarks of the largest face (the derived mesh needs them; see ``face_mesh``), the square
face crop the SadTalker engine also uses, the crop's mesh, speech -> mesh offsets and head poses, landmark
images, diffusion in overlapping 16-frame windows, and the frames (cropped or pasted back) muxed with the
audio trimmed to exactly ``frames / 30`` seconds.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.media.audio import write_wav
from portrait_studio.media.video import stream_mp4
from portrait_studio.models.manager import ModelManager
from portrait_studio.progress import CancelToken, ProgressFn, scaled
from portrait_studio.talk import compose
from portrait_studio.talk.aniportrait import engine, speech
from portrait_studio.talk.preprocess import FacePoints, crop_box
from portrait_studio.talk.reference_motion import load_reference_motion


def face_points_68(image: Image.Image) -> np.ndarray:
    """dlib's 68 points of the largest face (dlib-bin ships its model; a clear error when there is no face)."""
    from portrait_studio.faces.dlib_backend import DlibBackend

    faces = [f for f in DlibBackend().detect(np.asarray(image.convert("RGB"))) if f.points is not None]
    if not faces:
        raise InputError(
            "No face was found in the portrait. Use a photo where one face is clearly visible, "
            "facing the camera, at least about 100 pixels wide."
        )
    return np.asarray(max(faces, key=lambda f: f.area).points, dtype=np.float64)


def talk_aniportrait(
    portrait: Image.Image,
    samples: np.ndarray,
    out_path: Path,
    settings: Settings,
    options,  # noqa: ANN001 - TalkOptions (talk.service imports this module)
    manager: ModelManager,
    progress: ProgressFn,
    cancel: CancelToken,
) -> tuple[int, bool]:
    """Write the video; return (frames, random_weights). ``samples``: 16 kHz mono speech."""
    frames = speech.frame_count(len(samples))
    engine.check_available(manager)
    progress(0.03, "finding the face")
    portrait = portrait.convert("RGB")
    points = face_points_68(portrait)
    box = crop_box(FacePoints.from_68(points), *portrait.size)
    size = options.size
    crop = portrait.crop((box.left, box.top, box.right, box.bottom)).resize((size, size), Image.LANCZOS)
    local = (points - [box.left, box.top]) * [size / box.size[0], size / box.size[1]]
    motion = None
    if options.reference_video is not None:  # read before the models load: a bad video fails fast
        motion = load_reference_motion(Path(options.reference_video), frames, speech.FPS, settings,
                                       progress=scaled(progress, 0.03, 0.05), cancel=cancel)
    progress(0.05, "loading models")
    with engine.aniportrait_models(manager) as models:
        cancel.raise_if_cancelled()
        progress(0.08, "predicting the face mesh and head motion from speech")
        poses = engine.landmark_frames(models, samples, local, size, frames, options.still, options.pose_style,
                                       options.expression_scale, motion)
        cancel.raise_if_cancelled()
        rendered = engine.render_clip(models, crop, poses, options.steps, options.seed or 0,
                                      scaled(progress, 0.12, 0.9), cancel)
    video_frames = compose.finish_frames(list(rendered), portrait, box, options.mode)
    if options.enhance:
        video_frames = compose.enhance_frames(video_frames, frames, settings, scaled(progress, 0.9, 0.97), cancel)
    progress(0.97, "writing video")
    settings.temp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.temp_dir, prefix="talk-") as tmp:
        # At 30 fps a frame is 533.3 samples: round the audio up, or ffmpeg's -shortest drops the last frame.
        covering = math.ceil(frames * speech.SAMPLE_RATE / speech.FPS)
        wav = write_wav(samples[:covering], Path(tmp) / "speech.wav")
        stream_mp4(video_frames, Path(out_path), speech.FPS, audio_path=wav)
    return frames, models.random_weights
