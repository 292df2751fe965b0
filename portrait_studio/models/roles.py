"""Model roles: what each job needs, where the real weights live, and where the tiny ones go.

A *role* is a job a model does for us ("base", "motion_adapter", "gfpgan", ...). The ``default``
profile maps each role to published weights (a Hugging Face repo at a pinned revision, or a release
file with a checksum); the ``tiny`` profile maps it to a random-weight model that
``python -m portrait_studio make-tiny`` writes in the same on-disk format. Loaders never know which.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face repository (whole snapshot filtered by ``allow_patterns``, or one file)."""

    repo_id: str
    revision: str = "main"
    filename: str | None = None
    allow_patterns: tuple[str, ...] | None = None

    def describe(self) -> str:
        target = f"{self.repo_id}/{self.filename}" if self.filename else self.repo_id
        return f"{target}@{self.revision}"


@dataclass(frozen=True)
class UrlSource:
    """A single release file (GitHub releases and the like), checked after download when a digest is known.

    ``git_blob`` is the git blob id (sha1 of ``"blob <size>\\0" + content``) of a file stored in a git tree at
    the commit the URL pins: the repository itself vouches for that digest.
    """

    url: str
    filename: str
    sha256: str | None = None
    git_blob: str | None = None

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    group: str
    source: HubSource | UrlSource
    # "module:function" that writes a random-weight model for this role into a directory.
    tiny_builder: str
    # Path of the role inside its tiny directory ("" = the directory itself).
    tiny_path: str = ""
    # Needed for the app to do its main job (downloaded by a bare `download`).
    essential: bool = True


_SD15_FILES = (
    "model_index.json",
    "scheduler/*",
    "tokenizer/*",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
)

MOTION_LORAS = (
    "zoom-in",
    "zoom-out",
    "pan-left",
    "pan-right",
    "tilt-up",
    "tilt-down",
    "rolling-clockwise",
    "rolling-anticlockwise",
)

# h94/IP-Adapter keeps the SD1.5 adapters and their image encoder under models/ (the .bin twin of the
# adapter holds the same tensors as a nested {"image_proj": ..., "ip_adapter": ...} pickle).
IP_ADAPTER_FACE_FILE = "ip-adapter-plus-face_sd15.safetensors"
IP_IMAGE_ENCODER_DIR = "models/image_encoder"
IP_IMAGE_ENCODER_FILES = ("config.json", "model.safetensors")
_IP_IMAGE_ENCODER_PATTERNS = tuple(f"{IP_IMAGE_ENCODER_DIR}/{name}" for name in IP_IMAGE_ENCODER_FILES)

_FACEXLIB_RELEASE = "https://github.com/xinntao/facexlib/releases/download"

# AnimeGANv2 PyTorch weights live in the git tree of bryandlee/animegan2-pytorch (no releases); pinned to
# the last commit, and checked after download against their git blob ids at that commit.
_ANIMEGAN_RAW = "https://raw.githubusercontent.com/bryandlee/animegan2-pytorch/25d7b017267208dfaf34026aa3425e518372aa2f"
ANIMEGAN_BLOBS = {
    "face_paint_512_v2": "d75102f8f201ddaf8dbe6b913b1a97585b55f838",
    "face_paint_512_v1": "19c1a1da4d9580186109a2b055d91044e5127de6",
    "paprika": "58086c9db9fc7a9e5c2876ca31b8079599352643",
    "celeba_distill": "3b7ea61b02254980831cc3bc77af30666dbc999c",
}
# sha256 of facexlib's v0.1.0 recognition_arcface_ir_se50.pth (175,367,323 bytes) as published in a public
# model-verification script; facexlib's own loader checks no digest.
_ARCFACE_SHA256 = "a035c768259b98ab1ce0e646312f48b9e1e218197a0f80ac6765e88f8b6ddf28"
ANIMEGAN_STYLES = {
    "face_paint_512_v2": "AnimeGANv2 Face Portrait v2 (512 px faces)",
    "face_paint_512_v1": "AnimeGANv2 Face Portrait v1 (512 px faces)",
    "paprika": "AnimeGANv2 Paprika (scenes)",
    "celeba_distill": "AnimeGANv2 webtoon face, distilled on CelebA-HQ (256 px faces)",
}

_ROLE_LIST: list[Role] = [
    Role(
        "base",
        "Stable Diffusion 1.5 base model (UNet, VAE, CLIP text encoder, tokenizer, scheduler)",
        "stylize",
        HubSource("stable-diffusion-v1-5/stable-diffusion-v1-5", allow_patterns=_SD15_FILES),
        "portrait_studio.models.tiny:build_sd15",
    ),
    Role(
        "controlnet_canny",
        "ControlNet 1.1 canny edges, for template portraits",
        "stylize",
        HubSource("lllyasviel/control_v11p_sd15_canny", allow_patterns=("config.json", "*.safetensors")),
        "portrait_studio.models.tiny:build_controlnet",
        essential=False,
    ),
    Role(
        "controlnet_openpose",
        "ControlNet 1.1 openpose, for template portraits (face keypoints from the face landmarks)",
        "stylize",
        HubSource("lllyasviel/control_v11p_sd15_openpose", allow_patterns=("config.json", "*.safetensors")),
        "portrait_studio.models.tiny:build_controlnet",
        essential=False,
    ),
    Role(
        "motion_adapter",
        "AnimateDiff motion module v1.5.2",
        "animate",
        HubSource("guoyww/animatediff-motion-adapter-v1-5-2", allow_patterns=("config.json", "*.safetensors")),
        "portrait_studio.models.tiny:build_motion_adapter",
        essential=False,
    ),
    *[
        Role(
            f"motion_lora_{motion.replace('-', '_')}",
            f"AnimateDiff camera motion LoRA: {motion}",
            "animate",
            HubSource(f"guoyww/animatediff-motion-lora-{motion}", filename="diffusion_pytorch_model.safetensors"),
            "portrait_studio.models.tiny:build_motion_lora",
            tiny_path="diffusion_pytorch_model.safetensors",
            essential=False,
        )
        for motion in MOTION_LORAS
    ],
    Role(
        "motion_adapter_v3",
        "AnimateDiff v3 motion module (v1.5.3): portrait mode with SparseCtrl, and text mode without camera motion",
        "animate",
        HubSource(
            "guoyww/animatediff-motion-adapter-v1-5-3",
            allow_patterns=("config.json", "diffusion_pytorch_model.safetensors"),
        ),
        "portrait_studio.models.tiny_v3:build_motion_adapter_v3",
        essential=False,
    ),
    Role(
        # The repo name says "motion-lora", but this is AnimateDiff v3's *domain adapter* (v3_sd15_adapter.ckpt
        # converted to diffusers): a rank-128 LoRA on the spatial attention layers that absorbs the look of the
        # training videos. Its model card: "meant to be used with AnimateDiff v3 ... and SparseCtrl checkpoints".
        "domain_adapter_v3",
        "AnimateDiff v3 domain adapter LoRA (spatial attention), used with the v3 motion module",
        "animate",
        HubSource("guoyww/animatediff-motion-lora-v1-5-3", filename="diffusion_pytorch_model.safetensors"),
        "portrait_studio.models.tiny_v3:build_domain_adapter_lora",
        tiny_path="diffusion_pytorch_model.safetensors",
        essential=False,
    ),
    *[
        Role(
            f"sparsectrl_{kind}",
            f"AnimateDiff v3 SparseCtrl {kind} keyframe encoder ({what})",
            "animate",
            HubSource(
                f"guoyww/animatediff-sparsectrl-{kind}",
                allow_patterns=("config.json", "diffusion_pytorch_model.safetensors"),
            ),
            "portrait_studio.models.tiny_v3:build_sparsectrl",
            essential=False,
        )
        for kind, what in (("rgb", "RGB images as keyframes"), ("scribble", "sketches as keyframes"))
    ],
    Role(
        "animatediff_lightning",
        "AnimateDiff-Lightning 4-step distilled motion adapter (Fast mode)",
        "animate",
        HubSource("ByteDance/AnimateDiff-Lightning", filename="animatediff_lightning_4step_diffusers.safetensors"),
        "portrait_studio.models.tiny:build_motion_adapter_weights",
        tiny_path="animatediff_lightning_4step_diffusers.safetensors",
        essential=False,
    ),
    Role(
        "ip_adapter_face",
        "IP-Adapter Plus Face for SD1.5 (instant likeness from a face crop, no training)",
        "instant",
        HubSource("h94/IP-Adapter", filename=f"models/{IP_ADAPTER_FACE_FILE}"),
        "portrait_studio.instant.tiny:build_ip_adapter_face",
        tiny_path=IP_ADAPTER_FACE_FILE,
        essential=False,
    ),
    Role(
        "ip_image_encoder",
        "OpenCLIP ViT-H/14 image encoder of IP-Adapter (SD1.5 models), for instant likenesses",
        "instant",
        HubSource("h94/IP-Adapter", allow_patterns=_IP_IMAGE_ENCODER_PATTERNS),
        "portrait_studio.instant.tiny:build_ip_image_encoder",
        essential=False,
    ),
    Role(
        "face_detection",
        "RetinaFace ResNet-50 face detector with 5 landmarks (facexlib)",
        "faces",
        UrlSource(f"{_FACEXLIB_RELEASE}/v0.1.0/detection_Resnet50_Final.pth", "detection_Resnet50_Final.pth"),
        "portrait_studio.faces.tiny:build_face_detection",
        tiny_path="detection_Resnet50_Final.pth",
        essential=False,
    ),
    Role(
        "face_parsing",
        "ParseNet face parsing for face masks and paste-back (facexlib)",
        "faces",
        UrlSource(f"{_FACEXLIB_RELEASE}/v0.2.2/parsing_parsenet.pth", "parsing_parsenet.pth"),
        "portrait_studio.faces.tiny:build_face_parsing",
        tiny_path="parsing_parsenet.pth",
        essential=False,
    ),
    Role(
        "face_recognition",
        "ArcFace IR-SE50 identity embedding (facexlib)",
        "faces",
        UrlSource(
            f"{_FACEXLIB_RELEASE}/v0.1.0/recognition_arcface_ir_se50.pth", "recognition_arcface_ir_se50.pth",
            sha256=_ARCFACE_SHA256,
        ),
        "portrait_studio.faces.tiny:build_face_recognition",
        tiny_path="recognition_arcface_ir_se50.pth",
        essential=False,
    ),
    Role(
        "face_quality",
        "hyperIQA face image quality (facexlib)",
        "faces",
        UrlSource(f"{_FACEXLIB_RELEASE}/v0.2.0/assessment_hyperIQA.pth", "assessment_hyperIQA.pth"),
        "portrait_studio.faces.tiny:build_face_quality",
        tiny_path="assessment_hyperIQA.pth",
        essential=False,
    ),
    Role(
        "gfpgan",
        "GFPGAN v1.4 face restorer",
        "faces",
        UrlSource(
            "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth", "GFPGANv1.4.pth"
        ),
        "portrait_studio.faces.tiny:build_gfpgan",
        tiny_path="GFPGANv1.4.pth",
        essential=False,
    ),
    *[
        Role(
            f"animegan_{style}",
            description,
            "anime",
            UrlSource(f"{_ANIMEGAN_RAW}/weights/{style}.pt", f"{style}.pt", git_blob=ANIMEGAN_BLOBS[style]),
            "portrait_studio.stylize.animegan_net:build_animegan_tiny",
            tiny_path=f"{style}.pt",
            essential=False,
        )
        for style, description in ANIMEGAN_STYLES.items()
    ],
    Role(
        "sadtalker",
        "SadTalker V0.0.2 talking-head engine: 256/512 renderers, audio-to-motion, 3DMM reconstruction, mapping",
        "talk",
        HubSource(
            "vinthony/SadTalker-V002rc",
            allow_patterns=(
                "SadTalker_V0.0.2_256.safetensors",
                "SadTalker_V0.0.2_512.safetensors",
                "mapping_00229-model.pth.tar",
                "mapping_00109-model.pth.tar",
            ),
        ),
        "portrait_studio.talk.tiny:build_sadtalker",
        essential=False,
    ),
    # AniPortrait (audio-driven, diffusion): see portrait_studio/talk/aniportrait/. Its own group, so that
    # `download --roles talk` stays the SadTalker engine; revisions are not pinned yet.
    Role(
        "aniportrait",
        "AniPortrait: PoseGuider, ReferenceNet, denoising UNet + motion module, audio2mesh, audio2pose",
        "aniportrait",
        HubSource("ZJYang/AniPortrait", allow_patterns=(
            "pose_guider.pth", "reference_unet.pth", "denoising_unet.pth", "motion_module.pth",
            "audio2mesh.pt", "audio2pose.pt")),
        "portrait_studio.talk.aniportrait.tiny:build_aniportrait",
        essential=False,
    ),
    Role(
        "wav2vec2",
        "wav2vec 2.0 base (960 h) speech encoder, read by AniPortrait's audio2mesh/audio2pose",
        "aniportrait",
        HubSource("facebook/wav2vec2-base-960h", allow_patterns=(
            "config.json", "preprocessor_config.json", "model.safetensors", "pytorch_model.bin")),
        "portrait_studio.talk.aniportrait.tiny:build_wav2vec2",
        essential=False,
    ),
    Role(
        "aniportrait_image_encoder",
        "CLIP ViT-L/14 image encoder of sd-image-variations (AniPortrait's reference-image embedding)",
        "aniportrait",
        HubSource("lambdalabs/sd-image-variations-diffusers", allow_patterns=(
            "image_encoder/config.json", "image_encoder/*.safetensors", "image_encoder/pytorch_model.bin")),
        "portrait_studio.talk.aniportrait.tiny:build_image_encoder",
        essential=False,
    ),
    Role(
        "vae_ft_mse",
        "Stable Diffusion VAE with the MSE-fine-tuned decoder (AniPortrait's VAE; not the file inside SD1.5)",
        "aniportrait",
        HubSource("stabilityai/sd-vae-ft-mse", allow_patterns=("config.json", "diffusion_pytorch_model.safetensors")),
        "portrait_studio.talk.aniportrait.tiny:build_vae",
        essential=False,
    ),
]

ROLES: dict[str, Role] = {role.name: role for role in _ROLE_LIST}


def get_role(name: str) -> Role:
    from portrait_studio.errors import InputError

    try:
        return ROLES[name]
    except KeyError:
        raise InputError(f"Unknown model role '{name}'. Known roles: {', '.join(sorted(ROLES))}.") from None
