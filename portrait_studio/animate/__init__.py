"""Animate: AnimateDiff animations of a portrait, from a prompt or from a still (Stylize output or upload)."""
