"""Language tags: a model's own tag ('eng', 'en-us') to its ISO 639-1 code and its English name."""

from __future__ import annotations

import re
from functools import lru_cache

# MMS-TTS tokenizers name languages in ISO 639-3; the few this app treats specially, in 639-1.
ISO_639_3_TO_1 = {"eng": "en", "deu": "de", "fra": "fr", "spa": "es", "por": "pt", "ita": "it",
                  "nld": "nl", "rus": "ru", "hin": "hi", "cmn": "zh", "jpn": "ja", "kor": "ko"}


def language_code(tag: str | None) -> str | None:
    """'en-us', 'en_US', 'eng' -> 'en'; None stays None."""
    if not tag:
        return None
    head = tag.replace("_", "-").split("-", 1)[0].lower()
    return ISO_639_3_TO_1.get(head, head)


@lru_cache(maxsize=None)
def language_name(tag: str | None) -> str | None:
    """'eng' -> 'English', 'en-us' -> 'English (US)', 'aze-script_cyrillic' -> 'Azerbaijani
    (script cyrillic)'; an unknown code is shown as it is. ISO 639 names from pycountry."""
    if not tag:
        return None
    import pycountry

    head, rest = re.match(r"([A-Za-z]+)[-_]?(.*)", tag).groups() if tag[0].isalpha() else (tag, "")
    head = head.lower()
    found = None
    if len(head) in (2, 3):
        found = pycountry.languages.get(**{"alpha_2" if len(head) == 2 else "alpha_3": head})
    name = getattr(found, "name", None) or head
    rest = rest.replace("_", " ").strip()
    return f"{name} ({rest.upper() if len(rest) == 2 else rest})" if rest else name
