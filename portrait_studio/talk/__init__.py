"""Talk: make a portrait speak an audio clip, with head, eye and expression motion (SadTalker-compatible)."""

from portrait_studio.talk.service import TalkOptions, TalkResult, talk

__all__ = ["TalkOptions", "TalkResult", "talk"]
