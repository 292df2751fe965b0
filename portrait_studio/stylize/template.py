"""Template portraits (EasyPhoto's recipe): repaint the face of a template photo with the likeness.

1. Find the largest face in the template and cut a square around it (the model works at its native size
   there, whatever the template's size).
2. Inpaint the face region (a hull of the landmarks, widened a little) with the likeness prompt, guided by
   ControlNets so pose and features line up, at the user's denoise: canny edges of the crop (default) and/or
   openpose face keypoints drawn from the detected landmarks (68 with dlib, 5 with facexlib; no body pose:
   that would need a pose model's weights).
3. Match the new face's colours to the template's face (mean/std per channel in LAB).
4. A second, gentle inpainting pass over a band around the face edge blends skin and light into the photo.
5. Paste the crop back with a feathered mask: pixels outside the face region stay the template's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageFilter

from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.models.locator import download_command

# Template control name -> ControlNet roles, in the order their control images are passed.
CONTROL_ROLES = {
    "canny": ("controlnet_canny",),
    "openpose": ("controlnet_openpose",),
    "canny+openpose": ("controlnet_canny", "controlnet_openpose"),
    "none": (),
}
CROP_SCALE = 2.2  # crop side / face box side: head, hair and some shoulders for context
EDGE_DENOISE = 0.3  # strength of the blending pass around the face edge
CANNY_LOW, CANNY_HIGH = 100, 200


@dataclass
class TemplateFace:
    """The template, where its face is, and the pieces every seed reuses."""

    template: Image.Image
    box: tuple[int, int, int]  # x0, y0, side of the square crop in template pixels
    crop: Image.Image  # work x work
    mask: Image.Image  # L, work x work, feathered face region (inpaint + paste-back)
    edge_band: Image.Image  # L, work x work, the band of the second pass
    faces_found: int
    pose: Image.Image  # openpose-style face keypoints (white dots on black), work x work


def find_face(settings: Any, template: Image.Image) -> tuple[Any, int]:
    """The largest plausible face in the template and how many there are; InputError without one."""
    from portrait_studio.faces.align import landmarks_plausible
    from portrait_studio.faces.analyze import detect_scaled
    from portrait_studio.faces.backends import get_face_backend

    rgb = np.asarray(template.convert("RGB"))
    faces = [f for f in detect_scaled(get_face_backend(settings), rgb) if landmarks_plausible(f.box, f.landmarks5)]
    if not faces:
        raise InputError(
            "No face was found in the template photo. Use a photo where one face is clearly visible, "
            "facing the camera and at least about 80 pixels wide."
        )
    return max(faces, key=lambda f: f.area), len(faces)


def square_around(box: np.ndarray, size: tuple[int, int], scale: float = CROP_SCALE) -> tuple[int, int, int]:
    """(x0, y0, side): a square ``scale`` times the face box, moved to lie inside the image."""
    width, height = size
    x0, y0, x1, y1 = (float(v) for v in box)
    side = int(round(min(max(x1 - x0, y1 - y0) * scale, width, height)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.05 * (y1 - y0)  # a little higher: hair matters more than neck
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, side


def face_region_mask(face: Any, left: int, top: int, scale: float, work: int) -> Image.Image:
    """The face region in crop coordinates: landmark hull (68 points) or an ellipse (5 points), widened."""
    from portrait_studio.faces.masks import mask_from_five, mask_from_points

    matrix = np.array([[scale, 0.0, -left * scale], [0.0, scale, -top * scale]])
    points = getattr(face, "points", None)
    if points is not None and len(points) == 68:
        soft = mask_from_points(points, matrix, work)
    else:
        soft = mask_from_five(face.landmarks5, matrix, work)
    binary = (np.asarray(soft) > 64).astype(np.uint8)
    grow = max(1, work // 40)
    binary = cv2.dilate(binary, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return Image.fromarray(binary * 255).filter(ImageFilter.GaussianBlur(max(1.0, work / 128)))


def edge_band(mask: Image.Image, work: int) -> Image.Image:
    """A soft band straddling the mask's edge: where the new face meets the photo."""
    binary = (np.asarray(mask) > 127).astype(np.uint8)
    width = max(1, work // 24)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    band = cv2.dilate(binary, kernel) - cv2.erode(binary, kernel)
    return Image.fromarray(band * 255).filter(ImageFilter.GaussianBlur(max(1.0, width / 2)))


def face_pose_image(points: np.ndarray, work: int) -> Image.Image:
    """OpenPose's face rendering: each keypoint a small white dot on black (radius 3 at 512 px)."""
    canvas = np.zeros((work, work, 3), np.uint8)
    radius = max(1, round(3 * work / 512))
    for x, y in np.asarray(points, dtype=np.float64):
        if 0 <= x < work and 0 <= y < work:
            cv2.circle(canvas, (int(round(x)), int(round(y))), radius, (255, 255, 255), -1)
    return Image.fromarray(canvas)


def canny_image(image: Image.Image) -> Image.Image:
    gray = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, CANNY_LOW, CANNY_HIGH)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))


def match_colours(image: Image.Image, reference: Image.Image, mask: Image.Image) -> Image.Image:
    """Shift ``image``'s LAB mean/std inside ``mask`` to ``reference``'s there (skin tone and light)."""
    inside = np.asarray(mask) > 127
    if inside.sum() < 16:
        return image
    source = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2LAB).astype(np.float32)
    target = cv2.cvtColor(np.asarray(reference.convert("RGB")), cv2.COLOR_RGB2LAB).astype(np.float32)
    src_mean, src_std = source[inside].mean(0), source[inside].std(0) + 1e-3
    ref_mean, ref_std = target[inside].mean(0), target[inside].std(0) + 1e-3
    # Cap the stretch: a flat generated patch must not turn noise into texture.
    gain = np.clip(ref_std / src_std, 0.5, 2.0)
    matched = (source - src_mean) * gain + ref_mean
    matched = np.clip(np.round(matched), 0, 255).astype(np.uint8)
    return Image.fromarray(cv2.cvtColor(matched, cv2.COLOR_LAB2RGB))


def prepare_template(settings: Any, template: Image.Image, work: int) -> TemplateFace:
    template = template.convert("RGB")
    face, count = find_face(settings, template)
    left, top, side = square_around(face.box, template.size)
    scale = work / side
    crop = template.crop((left, top, left + side, top + side)).resize((work, work), Image.Resampling.LANCZOS)
    mask = face_region_mask(face, left, top, scale, work)
    if not (np.asarray(mask) > 127).any():
        raise InputError("The face in the template is too small to repaint: use a closer photo.")
    points = face.points if getattr(face, "points", None) is not None else face.landmarks5
    pose = face_pose_image((np.asarray(points, dtype=np.float64) - [left, top]) * scale, work)
    return TemplateFace(template, (left, top, side), crop, mask, edge_band(mask, work), count, pose)


def paste_back(prepared: TemplateFace, crop: Image.Image) -> Image.Image:
    """The template with ``crop`` blended in through the feathered face mask; elsewhere unchanged."""
    left, top, side = prepared.box
    resample = Image.Resampling.LANCZOS
    patch = crop.resize((side, side), resample) if crop.size != (side, side) else crop
    alpha = prepared.mask.resize((side, side), Image.Resampling.BILINEAR)
    result = prepared.template.copy()
    region = prepared.template.crop((left, top, left + side, top + side))
    result.paste(Image.composite(patch, region, alpha), (left, top))
    return result


def steps_for(steps: int, strength: float) -> tuple[int, int]:
    """(num_inference_steps to ask for, denoising steps that will run): at least one step runs."""
    asked = max(steps, math.ceil(1.0 / strength))
    return asked, max(1, min(int(asked * strength), asked))


def load_controlnets(manager: Any, control: str) -> tuple[dict[str, Any], bool]:
    """Loaders of the ControlNets ``control`` needs, by cache key, for ``cache.use(..., loaders=...)``
    (load-and-lock in one step), and whether any has random weights."""
    from portrait_studio.models.locator import is_random_weights

    loaders: dict[str, Any] = {}
    random_weights = False
    for role in CONTROL_ROLES[control]:
        path = manager.locator.path(role)

        def loader(role: str = role, path: Any = path) -> Any:
            from diffusers import ControlNetModel

            try:
                model = ControlNetModel.from_pretrained(
                    str(path), torch_dtype=manager.dtype, variant=manager.locator.variant(role, path)
                )
            except (OSError, ValueError) as exc:
                raise MissingWeightsError(
                    role, str(path), download_command(role), f"cannot load: {str(exc)[:120]}"
                ) from exc
            model.requires_grad_(False)
            return model.eval()

        loaders[f"{role}:model"] = loader
        random_weights = random_weights or is_random_weights(path)
    return loaders, random_weights


def control_images(control: str, image: Image.Image, prepared: TemplateFace) -> list[Image.Image]:
    """The control images for ``control``, in :data:`CONTROL_ROLES` order."""
    makers = {"controlnet_canny": lambda: canny_image(image), "controlnet_openpose": lambda: prepared.pose}
    return [makers[role]() for role in CONTROL_ROLES[control]]


def repaint(
    pipe: Any,
    prepared: TemplateFace,
    call: dict[str, Any],
    denoise: float,
    control: str,
    make_callback: Callable[[int, str], Any],
) -> tuple[Image.Image, Image.Image]:
    """Both passes for one seed on ``pipe`` (inpaint or ControlNet inpaint): (final image, face crop)."""
    work = prepared.crop.size[0]
    call = dict(call)
    steps = call.pop("num_inference_steps")

    def run(image: Image.Image, mask: Image.Image, strength: float, label: str) -> Image.Image:
        asked, running = steps_for(steps, strength)
        images = control_images(control, image, prepared)
        extra = {"control_image": images[0] if len(images) == 1 else images} if images else {}
        output = pipe(
            image=image, mask_image=mask, strength=strength, num_inference_steps=asked, width=work, height=work,
            callback_on_step_end=make_callback(running, label), **extra, **call,
        )
        return output.images[0]

    first = run(prepared.crop, prepared.mask, denoise, "face")
    first = match_colours(first, prepared.crop, prepared.mask)
    blended = Image.composite(first, prepared.crop, prepared.mask)
    second = run(blended, prepared.edge_band, min(EDGE_DENOISE, denoise), "blend")
    final_crop = Image.composite(second, blended, prepared.edge_band)
    return paste_back(prepared, final_crop), final_crop
