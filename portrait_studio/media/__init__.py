"""Decode, validate and encode user media (images, audio, video)."""
