"""Timed words as a caller receives them: JSON words with SubRip and WebVTT, audio as base64.

Shared by every entry point that sends audio inside JSON (the HTTP captioned route, the
RunPod worker), so both send the same shapes.
"""

from __future__ import annotations

import base64
from typing import Any

from .timings import to_srt, to_vtt


def b64(data: bytes) -> str:
    """Audio bytes as base64 text, for a JSON field."""
    return base64.b64encode(data).decode("ascii")


def captions(words) -> dict[str, Any]:
    """`words` as JSON, with SubRip and WebVTT subtitles made from them."""
    return {"words": [w.to_dict() for w in words], "srt": to_srt(words), "vtt": to_vtt(words)}
