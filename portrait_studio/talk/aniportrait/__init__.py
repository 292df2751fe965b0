"""AniPortrait: audio -> face mesh + head pose -> landmark images -> ReferenceNet/PoseGuider video diffusion."""
