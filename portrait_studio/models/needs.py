"""Which model roles each UI action needs, and what is missing on this machine (looks only, downloads nothing).

``required``: the action cannot run without them (the UI disables its button and says why). ``optional``:
one mode of the action needs them (listed with the mode, so a user sees every role a tab may ask for).
Light: the UI reads it while building the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from portrait_studio.config import Settings
from portrait_studio.models.doctor import RoleStatus, role_status
from portrait_studio.models.locator import ModelLocator
from portrait_studio.models.roles import ANIMEGAN_STYLES, MOTION_LORAS, get_role

_MOTION_LORA_ROLES = tuple(f"motion_lora_{m.replace('-', '_')}" for m in MOTION_LORAS)
_INSTANT = ("ip_adapter_face", "ip_image_encoder")


@dataclass(frozen=True)
class ActionNeeds:
    label: str  # the button's words
    required: tuple[str, ...]
    optional: dict[str, str] = field(default_factory=dict)  # role -> the mode that needs it
    any_of: tuple[str, ...] = ()  # at least one of these (e.g. one anime style)


ACTIONS: dict[str, ActionNeeds] = {
    "instant": ActionNeeds("Use now (instant)", ("base", *_INSTANT)),
    "train": ActionNeeds("Train", ("base",), {"gfpgan": "restoring small or soft selfie crops"}),
    "stylize": ActionNeeds("Generate", ("base",), {
        "controlnet_canny": "template portraits (canny)", "controlnet_openpose": "template portraits (openpose)",
        "gfpgan": "face restoration", **{r: "instant likenesses (face adapter)" for r in _INSTANT},
    }),
    "anime": ActionNeeds("Make it anime", (), {f"animegan_{s}": f"anime style {s}" for s in ANIMEGAN_STYLES},
                         any_of=tuple(f"animegan_{s}" for s in ANIMEGAN_STYLES)),
    "animate": ActionNeeds("Animate", ("base", "motion_adapter_v3", "domain_adapter_v3"), {
        "sparsectrl_rgb": "starting from a portrait (sparsectrl)",
        "motion_adapter": "camera motion and video2video (v1.5.2 motion module)",
        **{r: "camera motion" for r in _MOTION_LORA_ROLES},
        "animatediff_lightning": "Fast (AnimateDiff-Lightning)",
        **{r: "instant likenesses (face adapter)" for r in _INSTANT},
    }),
    "talk": ActionNeeds("Make it talk", ("sadtalker",), {"gfpgan": "Enhance face (GFPGAN)"}),
}


@dataclass
class ActionReadiness:
    action: str
    label: str
    missing: list[str]  # required roles that are not here
    statuses: dict[str, RoleStatus]  # every role the action names

    @property
    def ready(self) -> bool:
        return not self.missing

    @property
    def reason(self) -> str:
        if self.ready:
            return ""
        return f"{self.label} needs model weights that are not on this machine: {', '.join(self.missing)}."


def action_readiness(settings: Settings, action: str) -> ActionReadiness:
    needs = ACTIONS[action]
    locator = ModelLocator(settings)
    roles = [*needs.required, *[r for r in needs.optional if r not in needs.required]]
    statuses = {name: role_status(locator, get_role(name)) for name in roles}
    missing = [name for name in needs.required if not statuses[name].ready]
    if needs.any_of and not any(statuses[name].ready for name in needs.any_of):
        missing.append(needs.any_of[0])
    return ActionReadiness(action, needs.label, missing, statuses)
