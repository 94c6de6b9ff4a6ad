"""Text preparation: clean Unicode, spell out numbers for character-level models, chunk by sentence."""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

# Unicode categories that carry nothing to speak: controls, format characters
# (zero-width space/joiners, bidi marks, BOM), lone surrogates, private use, unassigned.
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_WHITESPACE = re.compile(r"\s+")

# Words ending in "." that do not end a sentence, and how a character-level model says them.
ABBREVIATIONS = {
    "mr.": "mister",
    "mrs.": "missus",
    "ms.": "miz",
    "dr.": "doctor",
    "prof.": "professor",
    "jr.": "junior",
    "sr.": "senior",
    "mt.": "mount",
    "vs.": "versus",
    "etc.": "et cetera",
    "e.g.": "for example",
    "i.e.": "that is",
    "approx.": "approximately",
    "no.": "number",
    "fig.": "figure",
    "inc.": "incorporated",
    "ltd.": "limited",
    "co.": "company",
}
# "No." only means "number" before a digit ("No. 5"); elsewhere it is the word "no".
_CONTEXT_ABBREVIATIONS = {"no."}

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
# Past this many digits a number is read digit by digit: nobody says a 40-digit cardinal,
# and num2words has no names that large.
MAX_CARDINAL_DIGITS = 15

_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents")}


def clean(text: str) -> str:
    """NFC-normalize, drop control and zero-width characters, collapse whitespace."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in _DROP_CATEGORIES
    )
    return _WHITESPACE.sub(" ", text).strip()


def has_speakable(text: str) -> bool:
    """True when at least one letter or digit is left to say."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


# Languages written in the Latin alphabet (ISO 639-1): their models' text is checked for letters
# of other scripts, which they can only spell out as symbol names ("Chinese letter ...") or drop.
LATIN_LANGUAGES = frozenset({
    "ca", "cs", "cy", "da", "de", "en", "es", "et", "fi", "fr", "hr", "hu", "id", "is", "it", "lb",
    "lt", "lv", "nb", "nl", "no", "pl", "pt", "ro", "sk", "sl", "sv", "sw", "tr", "vi"})


def foreign_letters(text: str, language: str | None) -> str:
    """The letters of `text` outside the alphabet of `language`, once each, in order.

    Empty when there are none, or when the language is not one known to use the Latin alphabet.
    """
    if language not in LATIN_LANGUAGES:
        return ""
    return "".join(dict.fromkeys(ch for ch in text if unicodedata.category(ch)[0] == "L"
                                 and not unicodedata.name(ch, "").startswith("LATIN")))


# --- numbers, money, times, dates, abbreviations -------------------------------------------


def _words(n: int | float | str, **kwargs) -> str:
    """num2words without the commas and hyphens that character vocabularies lack."""
    return num2words(n, **kwargs).replace(",", "").replace("-", " ")


def _digits(s: str) -> str:
    return " ".join(_words(int(d)) for d in s)


def _cardinal(s: str) -> str:
    s = s.replace(",", "")
    if len(s.lstrip("0")) > MAX_CARDINAL_DIGITS:
        return _digits(s)
    return _words(int(s))


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[m.group("cur")]
    whole = int(m.group("whole").replace(",", "")) if len(m.group("whole")) <= MAX_CARDINAL_DIGITS else None
    if whole is None:
        return f"{_digits(m.group('whole').replace(',', ''))} {many}"
    cents = m.group("cents")
    parts = [f"{_words(whole)} {one if whole == 1 else many}"]
    if cents:
        c = int(cents.ljust(2, "0"))
        if c:
            parts.append(f"{_words(c)} {sub_one if c == 1 else sub_many}")
    return " and ".join(parts)


def _time(m: re.Match) -> str:
    hour, minute = int(m.group("h")), int(m.group("m"))
    suffix = m.group("ampm")
    if hour > 24 or minute > 59:
        return m.group(0)
    if minute == 0:
        spoken = f"{_words(hour)} o'clock" if not suffix else _words(hour)
    elif minute < 10:
        spoken = f"{_words(hour)} oh {_words(minute)}"
    else:
        spoken = f"{_words(hour)} {_words(minute)}"
    if suffix:
        spoken += " " + " ".join(suffix.replace(".", "").lower())
    return spoken


def _iso_date(m: re.Match) -> str:
    year, month, day = int(m.group("y")), int(m.group("mo")), int(m.group("d"))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return f"{MONTHS[month - 1]} {_words(day, to='ordinal')} {_year(year)}"


def _year(year: int) -> str:
    return _words(year, to="year")


def _number(m: re.Match) -> str:
    s = m.group(0)
    sign = ""
    if s.startswith("-"):
        sign, s = "minus ", s[1:]
    if "." in s:
        whole, frac = s.split(".", 1)
        return f"{sign}{_cardinal(whole)} point {_digits(frac)}"
    plain = s.replace(",", "")
    if not sign and "," not in s and len(plain) == 4 and 1100 <= int(plain) <= 2099 and plain[2:] != "00":
        return _year(int(plain))  # "in 1999" -> "nineteen ninety nine"
    return sign + _cardinal(s)


_MONTH_NAMES = "|".join(MONTHS) + "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
_RULES: tuple[tuple[re.Pattern, object], ...] = (
    (re.compile(r"(?P<cur>[$£€])\s?(?P<whole>\d[\d,]*)(?:\.(?P<cents>\d{1,2}))?(?!\d)"), _money),
    (re.compile(r"\b(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})\b"), _iso_date),
    (re.compile(r"\b(?P<h>\d{1,2}):(?P<m>\d{2})(?:\s?(?P<ampm>[AaPp]\.?[Mm]\.?)(?![A-Za-z]))?"), _time),
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE),
     lambda m: _words(int(m.group(1)), to="ordinal") if len(m.group(1)) <= MAX_CARDINAL_DIGITS else _digits(m.group(1))),
    # "May 5" -> "May fifth": a day after a month name is an ordinal.
    (re.compile(rf"\b({_MONTH_NAMES})\.? (\d{{1,2}})\b(?!:)"),
     lambda m: f"{m.group(1)} {_words(int(m.group(2)), to='ordinal')}" if 1 <= int(m.group(2)) <= 31 else m.group(0)),
    (re.compile(r"(\d+(?:\.\d+)?)\s?%"), lambda m: f"{m.group(1)} percent"),
    (re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?|\d+"), _number),
    (re.compile(r"\s*&\s*"), lambda m: " and "),
    (re.compile(r"\s*\+\s*(?=\w)"), lambda m: " plus "),
    (re.compile(r"(?<=\w)@(?=\w)"), lambda m: " at "),
)
_ABBREVIATION = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?=\s|$)",
    re.IGNORECASE,
)
_NUMBER_AFTER = re.compile(r"\s*\d")


def _abbreviation(m: re.Match) -> str:
    key = m.group(1).lower()
    if key in _CONTEXT_ABBREVIATIONS and not _NUMBER_AFTER.match(m.string, m.end()):
        return m.group(1)
    return ABBREVIATIONS[key]


def expand(text: str) -> str:
    """Spell out numbers, money, times, dates, ordinals and abbreviations as English words.

    So that "at 3:30 PM on May 5th" is spoken by models that read characters (MMS-TTS
    has no digits in its alphabet) instead of dropped, and said the way people say it
    by phonemizing ones (espeak reads "$20" as "dollar twenty").
    """
    text = _ABBREVIATION.sub(_abbreviation, text)
    for pattern, replace in _RULES:
        text = pattern.sub(replace, text)
    return _WHITESPACE.sub(" ", text).strip()


# --- chunking -------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_CLAUSE_END = re.compile(r"[,;:—–]+(?=\s)|\s[—–-]+(?=\s)")
_INITIAL = re.compile(r"(?:^|\s)[^\W\d_]\.$")  # "J." in "J. R. R. Tolkien"


def split_sentences(text: str) -> list[str]:
    """Split at sentence ends that are not abbreviations or initials."""
    sentences, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        head = text[start:end]
        last_word = head.rsplit(" ", 1)[-1].lower()
        if last_word in ABBREVIATIONS or _INITIAL.search(head):
            continue
        sentences.append(text[start:end].strip())
        start = end
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return [s for s in sentences if s]


def _split_at(text: str, pattern: re.Pattern) -> list[str]:
    parts, start = [], 0
    for m in pattern.finditer(text):
        parts.append(text[start:m.end()].strip())
        start = m.end()
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _pack(pieces: list[str], limit: int) -> list[str]:
    """Join consecutive pieces with spaces while they fit in `limit` characters."""
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) + 1 + len(piece) <= limit:
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def _split_long(sentence: str, limit: int) -> list[str]:
    if len(sentence) <= limit:
        return [sentence]
    out: list[str] = []
    for clause in _pack(_split_at(sentence, _CLAUSE_END), limit):
        if len(clause) <= limit:
            out.append(clause)
            continue
        for words in _pack(clause.split(" "), limit):
            # A single "word" longer than the limit (no spaces at all) is cut where it must be.
            out.extend(words[i:i + limit] for i in range(0, len(words), limit))
    return out


def chunk(text: str, max_chars: int) -> list[str]:
    """Cut cleaned text into chunks that are each one whole sentence.

    A chunk is what a model speaks as one utterance, so a chunk boundary is always a
    sentence end: a sentence cut in two is spoken as two sentences, each with its own
    falling tone and pause. Only a sentence longer than `max_chars` is cut, at clause
    punctuation, and at a word only when one clause alone is too long. Fast first audio
    comes from decoding inside the sentence (see `windows`), never from cutting it.

    Nothing is dropped: `" ".join(chunk(t, n)) == t` for cleaned text, except that a
    single word longer than `max_chars` is cut into pieces.
    """
    return [piece for sentence in split_sentences(text) for piece in _split_long(sentence, max_chars)]
