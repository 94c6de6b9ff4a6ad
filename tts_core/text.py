"""Text preparation: clean Unicode, spell out numbers for character-level models, chunk by sentence."""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

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
# These can end a sentence ("apples, pears, etc. Then ..."): there the spoken word keeps the
# full stop, so the pause and the sentence boundary stay.
_SENTENCE_FINAL_ABBREVIATIONS = {"etc.", "jr.", "sr.", "inc.", "ltd.", "co."}

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
_SCALES = {"k": "thousand", "m": "million", "mn": "million", "b": "billion", "bn": "billion",
           "thousand": "thousand", "million": "million", "billion": "billion", "trillion": "trillion"}

# Units after a number: symbol -> (singular, plural). Only symbols that mean nothing else
# right after a number ("in", "s", "l" and "W" do, so they are left to the voice).
UNITS = {
    "%": ("percent", "percent"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°": ("degree", "degrees"),
    "mph": ("mile per hour", "miles per hour"),
    "MPH": ("mile per hour", "miles per hour"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mm": ("millimeter", "millimeters"),
    "cm": ("centimeter", "centimeters"),
    "m": ("meter", "meters"),
    "km": ("kilometer", "kilometers"),
    "ft": ("foot", "feet"),
    "yd": ("yard", "yards"),
    "mi": ("mile", "miles"),
    "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"),
    "kg": ("kilogram", "kilograms"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "ms": ("millisecond", "milliseconds"),
    "sec": ("second", "seconds"),
    "min": ("minute", "minutes"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "kB": ("kilobyte", "kilobytes"),
    "KB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "kW": ("kilowatt", "kilowatts"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
}

# Street-type abbreviations after a house number and a name ("10 Downing St.").
STREET_TYPES = {"St": "Street", "Ave": "Avenue", "Rd": "Road", "Blvd": "Boulevard", "Ln": "Lane",
                "Dr": "Drive", "Ct": "Court", "Pl": "Place", "Sq": "Square", "Hwy": "Highway"}

# Words after which a Roman numeral is a plain number: "Part III" -> "Part three".
NUMBERED_NOUNS = ("Part", "Chapter", "Volume", "Book", "Act", "Scene", "Section", "Article",
                  "Appendix", "Phase", "Stage", "Level", "Type", "Class", "Grade", "Episode",
                  "Season", "Round", "War", "Bowl", "Psalm", "Step", "Unit", "Division")
# Titles before a name: only with one of these is "I" a numeral ("King Henry I"); without,
# "I" is the pronoun ("Then I left"). II and up after any capitalized name are numerals.
REGNAL_TITLES = ("King", "Queen", "Pope", "Emperor", "Empress", "Tsar", "Czar", "Pharaoh",
                 "Sultan", "Prince", "Princess", "Duke", "Duchess")
# Past these, "a/b" is not said as a fraction: "355/113" is "three hundred ... slash one hundred ...".
MAX_FRACTION_DENOMINATOR = 100
MAX_FRACTION_NUMERATOR = 1000
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}

# Numbers from 1100 to 2099 are read as years ("nineteen eighty seven"), except those ending
# in "00" ("2000 users"); those and 1000 to 1099 are years only after one of these words.
YEARS = range(1000, 2100)
YEARS_WITHOUT_CUE = range(1100, 2100)
_YEAR_CUES = frozenset({"in", "since", "by", "from", "until", "till", "to", "of", "circa",
                        "around", "year", "early", "late", "mid", "before", "after",
                        *(m.lower() for m in MONTHS)})
# Versions are read part by part ("Python 3.11" -> "three point eleven") after these words.
_VERSION_WORDS = r"[Vv]ersion|Python|Java|Node|iOS|Android|Windows|macOS|Ubuntu|release|Release|update|Update"


def clean(text: str) -> str:
    """NFC-normalize, drop control and zero-width characters, collapse whitespace."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in _DROP_CATEGORIES
    )
    return _WHITESPACE.sub(" ", text).strip()


# --- emoji and symbols ------------------------------------------------------------------------
# espeak reads a symbol by its whole Unicode name ("grinning face", "square rad over s squared"):
# 300 emoji were a minute of speech. Symbols are kept only where a reader says them: ASCII and
# Latin-1's (°, ©, ×), currency signs, and a few with short readings; a symbol whose
# compatibility form is plain letters is read as those ("㎜" -> "mm", "℃" -> "°C", "ⓐ" -> "a");
# every other one (emoji, pictographs, dingbats, arrows, box drawing, most squared units) is
# dropped, with the marks that only dress emoji (variation selectors, skin tones, keycaps).
KEPT_SYMBOLS = frozenset("−±×÷≤≥≠≈∞√™")
SYMBOL_WORDS = {"№": "number"}
_EMOJI_MARKS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")  # variation selectors


def _symbol(ch: str) -> str:
    if ch in SYMBOL_WORDS:
        return f" {SYMBOL_WORDS[ch]} "
    category = unicodedata.category(ch)
    if category == "Me":  # enclosing marks: a keycap's frame
        return ""
    if category[0] != "S" or ch <= "\xff" or category == "Sc" or ch in KEPT_SYMBOLS:
        return ch
    compat = unicodedata.normalize("NFKC", ch)
    if compat != ch and all(c.isascii() and c.isalnum() or c == "°" for c in compat):
        return compat
    return " "


def read_symbols(text: str) -> str:
    """Emoji and symbols as text preparation reads them: kept, as their letters, or dropped.

    Letters, digits and punctuation are never touched, so speakable text stays speakable.
    """
    text = _EMOJI_MARKS.sub("", text)
    if text.isascii():
        return text
    return _WHITESPACE.sub(" ", "".join(map(_symbol, text))).strip()


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


def letters_shown(letters: str, limit: int) -> str:
    """Letters listed so that a person reads them as letters, not as a word: "П, р, и, в ..."
    (at most `limit` of them, then "...")."""
    more = " ..." if len(letters) > limit else ""
    return ", ".join(letters[:limit]) + more


# --- numbers, money, times, dates, units, Roman numerals, abbreviations ---------------------


def _words(n: int | float | str, **kwargs) -> str:
    """num2words without the commas and hyphens that character vocabularies lack."""
    return num2words(n, **kwargs).replace(",", "").replace("-", " ")


def _digits(s: str) -> str:
    """Digit by digit: "0134" -> "zero one three four"."""
    return " ".join(_words(int(d)) for d in s if d.isdigit())


def _cardinal(s: str) -> str:
    s = s.replace(",", "")
    if len(s.lstrip("0")) > MAX_CARDINAL_DIGITS:
        return _digits(s)
    return _words(int(s))


def _amount(s: str) -> str:
    """A count, never a year: "-1,250.5" -> "minus one thousand two hundred and fifty point five"."""
    sign = ""
    if s[:1] in "-−":
        sign, s = "minus ", s[1:]
    whole, _, frac = s.partition(".")
    spoken = _cardinal(whole) if whole else ""
    if frac:
        spoken = f"{spoken} point {_digits(frac)}".strip()
    return sign + spoken


def _is_one(s: str) -> bool:
    return s.replace(",", "") in ("1", "-1", "−1")


def _plural(words: str) -> str:
    """ "nineteen sixty" -> "nineteen sixties", "eighteen hundred" -> "eighteen hundreds"."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _keep_stop(m: re.Match) -> str:
    """A full stop eaten with an abbreviation comes back where it ended a sentence."""
    if not m.group(0).endswith("."):
        return ""
    rest = m.string[m.end():]
    return "." if not rest.strip() or re.match(r"\s+[A-Z\"“]", rest) else ""


def _year(year: int) -> str:
    return _words(year, to="year")


def _ordinal(n: int) -> str:
    return _words(n, to="ordinal")


def _roman(s: str) -> int | None:
    """The value of a well-formed Roman numeral ("XXIII" -> 23), or None ("IIII", "VX")."""
    if not s or any(ch not in _ROMAN_VALUES for ch in s):
        return None
    total = 0
    for i, ch in enumerate(s):
        value = _ROMAN_VALUES[ch]
        total += -value if i + 1 < len(s) and _ROMAN_VALUES[s[i + 1]] > value else value
    return total if 0 < total < 4000 and _to_roman(total) == s else None


def _to_roman(n: int) -> str:
    out = ""
    for value, letters in ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
                           (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")):
        count, n = divmod(n, value)
        out += letters * count
    return out


def _address(m: re.Match) -> str:
    number = m.group("num")
    house = _year(int(number)) if len(number) == 4 else _cardinal(number)  # 1600 -> sixteen hundred
    return f"{house} {m.group('name')} {STREET_TYPES[m.group('type')]}{_keep_stop(m)}"


def _phone(m: re.Match) -> str:
    groups = [g for g in (m.group("cc"), m.group("a1") or m.group("a2"), m.group("ex"), m.group("line")) if g]
    spoken = [("plus " if g.startswith("+") else "") + _digits(g) for g in groups]
    return ", ".join(spoken)


def _date(month: int, day: int, year: int, original: str) -> str:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return original
    return f"{MONTHS[month - 1]} {_ordinal(day)} {_year(year)}"


def _iso_date(m: re.Match) -> str:
    return _date(int(m.group("mo")), int(m.group("d")), int(m.group("y")), m.group(0))


def _slash_date(m: re.Match) -> str:
    a, b, year = int(m.group("a")), int(m.group("b")), int(m.group("y"))
    month, day = (a, b) if a <= 12 else (b, a)  # 11/02/2031 is American; 25/12/2031 cannot be
    return _date(month, day, year, m.group(0))


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[m.group("cur")]
    sign = "minus " if m.group("sign") else ""
    whole_s = m.group("whole").replace(",", "")
    if m.group("scale"):
        value = whole_s + (f".{m.group('cents')}" if m.group("cents") else "")
        return f"{sign}{_amount(value)} {_SCALES[m.group('scale').lower()]} {many}"
    if len(whole_s) > MAX_CARDINAL_DIGITS:
        return f"{sign}{_digits(whole_s)} {many}"
    whole, cents = int(whole_s), m.group("cents")
    parts = [f"{_words(whole)} {one if whole == 1 else many}"]
    if cents:
        c = int(cents.ljust(2, "0"))
        if c:
            parts.append(f"{_words(c)} {sub_one if c == 1 else sub_many}")
    return sign + " and ".join(parts)


def _decade(m: re.Match) -> str:
    century, tens = m.group("century"), m.group("tens")
    if century:
        return _plural(_year(int(century + tens + "0")))
    return _plural(_words(int(tens + "0")))


def _time(m: re.Match) -> str:
    hour, minute = int(m.group("h")), int(m.group("m") or 0)
    suffix = m.group("ampm")
    if hour > 24 or minute > 59 or (suffix and not 1 <= hour <= 12):
        return m.group(0)
    if m.group("m") is None:
        spoken = _words(hour)
    elif minute == 0:
        spoken = f"{_words(hour)} o'clock" if not suffix else _words(hour)
    elif minute < 10:
        spoken = f"{_words(hour)} oh {_words(minute)}"
    else:
        spoken = f"{_words(hour)} {_words(minute)}"
    if suffix:
        # "AM", not "a m" (espeak reads a lone "a" as the article) nor "a.m." (a full stop
        # inside a sentence would end it for the chunker).
        spoken += " " + suffix.replace(".", "").upper() + _keep_stop(m)
    return spoken


def _fraction(numerator: int, denominator: int, mixed: bool = False) -> str | None:
    """ "two thirds", "one half"; in a mixed number "a quarter". None when it is no fraction."""
    if not 2 <= denominator <= MAX_FRACTION_DENOMINATOR or numerator > MAX_FRACTION_NUMERATOR:
        return None
    name = {2: ("half", "halves"), 4: ("quarter", "quarters")}.get(denominator)
    if name is None:
        name = (_ordinal(denominator), _ordinal(denominator) + "s")  # "third", "thirds"
    count = "a" if mixed and numerator == 1 else _words(numerator)
    return f"{count} {name[0] if numerator == 1 else name[1]}"


def _mixed_fraction(m: re.Match) -> str:
    part = _fraction(int(m.group("n")), int(m.group("d")), mixed=True)
    return m.group(0) if part is None else f"{_amount(m.group('whole'))} and {part}"


def _simple_fraction(m: re.Match) -> str:
    if m.group(0) == "24/7":
        return "twenty four seven"
    part = _fraction(int(m.group("n")), int(m.group("d")))
    return f"{_amount(m.group('n'))} slash {_amount(m.group('d'))}" if part is None else part


def _vulgar_fraction(m: re.Match) -> str:
    # Unicode's vulgar fractions have denominators up to 10 ("⅒"); numeric() gives a float.
    value = Fraction(unicodedata.numeric(m.group("f"))).limit_denominator(10)
    part = _fraction(value.numerator, value.denominator, mixed=bool(m.group("whole")))
    if m.group("whole"):
        return f"{_amount(m.group('whole'))} and {part}"
    return part


def _unit(m: re.Match) -> str:
    one, many = UNITS[m.group("unit")]
    # "a 12 mm screw": after "a" the measure is an adjective, "a twelve millimeter screw".
    adjective = m.string[:m.start()].rstrip().rsplit(" ", 1)[-1].lower() in ("a", "an")
    return f"{_amount(m.group('num'))} {one if adjective or _is_one(m.group('num')) else many}"


def _roman_after_noun(m: re.Match) -> str:
    value = _roman(m.group("num"))
    return m.group(0) if value is None else f"{m.group('noun')} {_words(value)}"


def _roman_after_name(m: re.Match) -> str:
    value = _roman(m.group("num"))
    if value is None or (value == 1 and not m.group("title")):
        return m.group(0)  # "Then I left": a pronoun
    return f"{m.group('title') or ''}{m.group('name')} the {_ordinal(value)}"


def _version(m: re.Match) -> str:
    """ "version 2.7" -> "version two point seven", "Python 3.11" -> "Python three point eleven"."""
    return f"{m.group('kw') or 'version'} " + " point ".join(_cardinal(p) for p in m.group("v").split("."))


def _dotted(m: re.Match) -> str:
    parts = m.group(0).split(".")
    joiner = " dot " if len(parts) >= 4 else " point "  # 192.168.0.1 is an address, 1.2.3 a version
    return joiner.join(_cardinal(p) for p in parts)


def _number(m: re.Match) -> str:
    s = m.group(0)
    plain = s.replace(",", "")
    if plain.isdigit() and len(plain) > 1 and plain.startswith("0"):
        return _digits(plain) + _space_before_letter(m)  # "007", "02134": digit by digit
    if plain.isdigit() and "," not in s and len(plain) == 4 and int(plain) in YEARS:
        before = m.string[:m.start()].rstrip(" ,").rsplit(" ", 1)[-1].lower()
        if (int(plain) in YEARS_WITHOUT_CUE and plain[2:] != "00") or before in _YEAR_CUES:
            return _year(int(plain)) + _space_before_letter(m)  # "in 1999" -> "nineteen ninety nine"
    return _amount(s) + _space_before_letter(m)


def _space_before_letter(m: re.Match) -> str:
    return " " if m.string[m.end():m.end() + 1].isalpha() else ""  # "5G" -> "five G"


_MONTH_NAMES = "|".join(MONTHS) + "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"  # 1,250,000.5 or 42; "1987," is 1987 and a comma
_UNIT_SYMBOLS = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
_VULGAR = "".join(ch for ch in map(chr, range(0xBC, 0x215F)) if unicodedata.category(ch) == "No"
                  and "VULGAR FRACTION" in unicodedata.name(ch, ""))

_RULES: tuple[tuple[re.Pattern, object], ...] = (
    # "10 Downing St." -> "ten Downing Street"; before the abbreviations, where "Dr." is "doctor".
    (re.compile(r"\b(?P<num>\d{1,5}) (?P<name>(?:[A-Z][a-z]+ ){1,3})(?P<type>"
                + "|".join(STREET_TYPES) + r")\.(?=\W|$)"), _address),
    (re.compile(r"(?<![\w.])(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True))
                + r")(?=\s|$)", re.IGNORECASE), None),  # abbreviations: see _abbreviation
    (re.compile(r"\bSt\.(?= [A-Z])"), lambda m: "Saint"),
    # Phone numbers, digit by digit in their groups: "(212) 555-7788", "+1 212-555-7788", "555-0134".
    (re.compile(r"(?<![\w\-.,])(?:(?:(?P<cc>\+\d{1,3}|1)[\s-])?(?:\((?P<a1>\d{3})\)\s?|(?P<a2>\d{3})[-.\s]))?"
                r"(?P<ex>\d{3})-(?P<line>\d{4})(?![\w\-]|[.,]\d)"), _phone),
    (re.compile(r"\b(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})\b"), _iso_date),
    (re.compile(r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4})\b"), _slash_date),
    # Ranges: "150-250" -> "150 to 250" (each side is read below as what it is).
    (re.compile(r"(?<=\d)(?:-|\s?[–—]\s?)(?=[$£€]?\d)"), lambda m: " to "),
    (re.compile(rf"(?P<sign>[-−])?(?P<cur>[$£€])\s?(?P<whole>\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.(?P<cents>\d{{1,2}}))?"
                r"(?:\s?(?P<scale>thousand|million|billion|trillion|bn|mn|[kKmMbB])(?![\w]))?(?!\d)"), _money),
    # Decades: "the 1960s" -> "the nineteen sixties", "the '80s" -> "the eighties".
    (re.compile(r"(?:\b(?P<century>1[1-9]|20)|(?<![\w'’])['’]?)(?P<tens>\d)0['’]?s\b"), _decade),
    (re.compile(r"\b(?P<h>\d{1,2}):(?P<m>\d{2})(?:\s?(?P<ampm>[AaPp]\.?[Mm]\b\.?))?"), _time),
    (re.compile(r"\b(?P<h>\d{1,2})(?P<m>)?\s?(?P<ampm>[AaPp]\.?[Mm]\b\.?)(?!\w)"), _time),
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE),
     lambda m: _ordinal(int(m.group(1))) if len(m.group(1)) <= MAX_CARDINAL_DIGITS else _digits(m.group(1))),
    # "May 5" -> "May fifth", "12 December" -> "the twelfth of December".
    (re.compile(rf"\b({_MONTH_NAMES})\.? (\d{{1,2}})\b(?!:)"),
     lambda m: f"{m.group(1)} {_ordinal(int(m.group(2)))}" if 1 <= int(m.group(2)) <= 31 else m.group(0)),
    (re.compile(rf"\b(\d{{1,2}}) ({_MONTH_NAMES})\b"),
     lambda m: f"the {_ordinal(int(m.group(1)))} of {m.group(2)}" if 1 <= int(m.group(1)) <= 31 else m.group(0)),
    # Roman numerals: "Part III" -> "Part three"; "Elizabeth II" -> "Elizabeth the second".
    (re.compile(r"\b(?P<noun>" + "|".join(NUMBERED_NOUNS) + r") (?P<num>[IVXLCDM]+)\b(?!['’\w])"),
     _roman_after_noun),
    (re.compile(r"(?P<title>\b(?:" + "|".join(REGNAL_TITLES) + r") )?\b(?P<name>[A-Z][a-z]+) "
                r"(?P<num>[IVX]+)\b(?!['’\w])"), _roman_after_name),
    (re.compile(rf"(?:(?P<whole>\d+) ?)?(?P<f>[{_VULGAR}])"), _vulgar_fraction),
    (re.compile(r"(?<![\d/])(?P<whole>\d+) (?P<n>\d+)/(?P<d>\d+)(?![\d/])"), _mixed_fraction),
    (re.compile(r"(?<![\d/])(?P<n>\d+)/(?P<d>\d+)(?![\d/])"), _simple_fraction),
    (re.compile(rf"(?<![\w.])(?P<num>[-−]?{_NUM})\s?(?P<unit>{_UNIT_SYMBOLS})(?![A-Za-z0-9°])"), _unit),
    (re.compile(rf"\b(?:(?P<kw>{_VERSION_WORDS}) ?v?|v)(?P<v>\d+(?:\.\d+)+)\b"), _version),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+){2,}\b"), _dotted),
    (re.compile(r"#(?=\d)"), lambda m: "number "),
    (re.compile(rf"(?<![\w.])[-−]?{_NUM}(?![\d])"), _number),
    (re.compile(r"\d+"), lambda m: f" {_cardinal(m.group(0))} "),  # digits inside a word: "MP3"
    (re.compile(r"\s*&\s*"), lambda m: " and "),
    (re.compile(r"\s*\+\s*(?=\w)"), lambda m: " plus "),
    (re.compile(r"(?<=\w)@(?=\w)"), lambda m: " at "),
)
_NUMBER_AFTER = re.compile(r"\s*\d")


def _abbreviation(m: re.Match) -> str:
    key = m.group(1).lower()
    if key in _CONTEXT_ABBREVIATIONS and not _NUMBER_AFTER.match(m.string, m.end()):
        return m.group(1)
    spoken = ABBREVIATIONS[key]
    return spoken + _keep_stop(m) if key in _SENTENCE_FINAL_ABBREVIATIONS else spoken


def expand(text: str) -> str:
    """Read numbers, money, times, dates, units, Roman numerals and abbreviations as English words.

    So that "In 1987, at 3:30 p.m., Queen Elizabeth II paid $5.20" is spoken by models that
    read characters (MMS-TTS has no digits in its alphabet) instead of dropped, and said the
    way people say it by phonemizing ones (espeak reads "$20" as "dollar twenty", a year as
    a count and "II" as letters). Punctuation that gives a pause is kept.
    """
    for pattern, replace in _RULES:
        text = pattern.sub(replace or _abbreviation, text)
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
