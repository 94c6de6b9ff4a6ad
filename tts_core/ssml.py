"""Speech markup (SSML): a `<speak>` document read safely into the sentences, rates and silences a plan runs.

An input that starts with `<speak>` (or an XML declaration before it) is SSML on every route,
because `plan.make_plan` asks `is_ssml` first; anything else is plain text. The document is
read by expat with no DTD, no entities and no network (a DOCTYPE is refused before anything
in it is read), nested at most `MAX_DEPTH` deep, and no longer than the request's character
limit. What it says becomes what the pipeline already runs: whole-sentence chunks of
prepared text (the same `text.expand` as plain text), each with its own speed, and exact
silences (in samples) between them. Text inside `<sub>`, `<say-as>` is rewritten before that
preparation; `<phoneme>` becomes Piper's raw phoneme block `[[ ... ]]`. Every problem is an
`InputError` that names the element and its line, raised before anything is spoken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.parsers import expat

from . import text as textproc
from .errors import InputError

# SSML is an input that opens with <speak>, or with an XML prolog (declaration, DOCTYPE), which
# is refused or skipped when read: `<?xml ...?><!DOCTYPE ...>` must not become plain text.
_SSML_START = re.compile(r"\s*(?:<speak[\s>/]|<\?xml[\s?]|<!DOCTYPE[\s>])")
MAX_DEPTH = 16  # elements open at once (speak > p > s > prosody > ... is rarely deeper than 6)
MAX_BREAK_S = 10.0  # one <break> (Google's and Azure's limit too)
MAX_SILENCE_S = 60.0  # all breaks of a request together
# <break strength>, in seconds (Azure's values); a <break/> with no attribute is "medium".
STRENGTHS = {"none": 0.0, "x-weak": 0.25, "weak": 0.5, "medium": 0.75, "strong": 1.0,
             "x-strong": 1.25}
# <prosody rate> words, as multiples of the speed the request asked for.
RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.5}
SAY_AS = {"characters": "characters", "spell-out": "characters", "verbatim": "characters",
          "cardinal": "cardinal", "number": "cardinal", "ordinal": "ordinal", "date": "date",
          "telephone": "telephone"}
EMPHASIS_LEVELS = frozenset({"strong", "moderate", "none", "reduced"})
ELEMENTS = ("speak", "p", "s", "break", "sub", "say-as", "prosody", "emphasis", "phoneme")
_TIME = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s)\s*", re.IGNORECASE)
_PERCENT = re.compile(r"\s*([+-]?)(\d+(?:\.\d+)?)\s*%\s*")
_NUMBER = re.compile(r"\s*-?\d+(?:\.\d+)?\s*")
_DATE_PARTS = re.compile(r"\d+")
_NUMERIC_DATE = re.compile(r"\s*\d+[\s/.-]+\d+[\s/.-]+\d+\s*")
_DATE_ORDERS = {"ymd": (0, 1, 2), "mdy": (2, 0, 1), "dmy": (2, 1, 0)}  # where y, m, d stand


def is_ssml(text) -> bool:
    """True when `text` is speech markup: it starts with <speak> (or an XML prolog)."""
    return isinstance(text, str) and _SSML_START.match(text) is not None


@dataclass
class _Element:
    tag: str
    attrs: dict
    line: int
    children: list = field(default_factory=list)  # _Element or str, in order

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def where(self) -> str:
        return f"<{self.tag}> at line {self.line}"


@dataclass(frozen=True)
class Spoken:
    """A document as the plan runs it: chunks, each chunk's speed, the silence in samples
    before each chunk (and one more entry: after the last), and what it typed (word timings)."""

    chunks: tuple[str, ...]
    speeds: tuple[float, ...]
    silences: tuple[int, ...]
    typed: str
    note: str
    english: bool = False  # the text was prepared with `text.expand`
    said: dict = field(default_factory=dict)  # an element's text as typed -> what it says

    def spell(self, word: str) -> str:
        """A typed word as it is said (what word timings map back with): an element's
        replacement, else the studio's own preparation."""
        core = word.strip(_PUNCTUATION)
        if core in self.said:
            return word.replace(core, self.said[core], 1)
        return textproc.expand(word) if self.english else word


def read(text: str, engine, speed: float, speeds: tuple[float, float], longest: int, limit: int,
         param: str) -> Spoken:
    """Read SSML `text` for `engine` at the request's `speed` (<prosody rate> keeps it within
    `speeds`, the lowest and highest): chunks of at most `longest` characters, spelled out no
    longer than `limit`. Raise InputError (as `param`) naming the element and its line for
    anything malformed, unsupported or out of range."""
    try:
        root = parse(text)
        return _Reader(engine, speed, speeds, longest, limit).spoken(root)
    except _SsmlError as e:
        raise InputError(f"SSML: {e}", param=param) from None


class _SsmlError(Exception):
    """What is wrong with the markup; `read` makes it an InputError for the caller's field."""


def parse(text: str) -> _Element:
    """The document as a tree, read by expat with DTDs and entities refused and depth bounded."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    stack: list[_Element] = []
    roots: list[_Element] = []

    def start(tag, attrs):
        if len(stack) >= MAX_DEPTH:
            raise _SsmlError(f"<{tag}> at line {parser.CurrentLineNumber} is nested more than "
                             f"{MAX_DEPTH} elements deep; flatten the markup.")
        element = _Element(tag, attrs, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(element)
        stack.append(element)

    def data(chars):
        if stack:
            stack[-1].children.append(chars)

    def refuse(what):
        def handler(*_):
            raise _SsmlError(f"{what} at line {parser.CurrentLineNumber} is not allowed: "
                             "SSML here reads no DTD and no entities.")
        return handler

    parser.StartElementHandler, parser.CharacterDataHandler = start, data
    parser.EndElementHandler = lambda tag: stack.pop()
    parser.StartDoctypeDeclHandler = refuse("a <!DOCTYPE>")
    parser.EntityDeclHandler = refuse("an <!ENTITY>")
    parser.ExternalEntityRefHandler = refuse("an external entity")
    try:
        parser.Parse(text, True)
    except expat.ExpatError as e:
        raise _SsmlError(_malformed(e, stack)) from None
    if roots[0].tag != "speak":
        raise _SsmlError(f"the document's root is <{roots[0].tag}>; SSML starts with <speak>.")
    return roots[0]


def _malformed(e: expat.ExpatError, stack: list[_Element]) -> str:
    """Expat's complaint in a person's words, naming the element left open where that is it."""
    at = f"line {e.lineno}, column {e.offset + 1}"
    if stack and e.code == expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS]:
        return f"unclosed <{stack[-1].tag}> at line {stack[-1].line}; close it with </{stack[-1].tag}>."
    if stack and e.code == expat.errors.codes[expat.errors.XML_ERROR_TAG_MISMATCH]:
        return (f"unclosed <{stack[-1].tag}> at line {stack[-1].line}: the closing tag at {at} "
                f"does not match it.")
    if e.code == expat.errors.codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY]:
        return (f"undefined entity at {at}; write & as &amp; and < as &lt; (only &amp; &lt; "
                "&gt; &quot; &apos; and character references are read).")
    return f"the markup is not well-formed XML: {expat.ErrorString(e.code)} at {at}."


@dataclass
class _Block:
    """Text spoken as one run at one speed: the spoken text and the text as typed."""

    speed: float
    spoken: list[str] = field(default_factory=list)
    typed: list[str] = field(default_factory=list)


class _Reader:
    """Walks the tree once: text into blocks at their speed, boundaries and breaks between."""

    def __init__(self, engine, speed: float, speeds: tuple[float, float], longest: int,
                 limit: int):
        self.engine, self.speed, self.speeds = engine, speed, speeds
        self.longest, self.limit = longest, limit
        self.english = engine.language == "en"
        self.blocks: list[_Block] = []  # finished blocks
        self.silence_s: list[float] = [0.0]  # before each finished block, and after the last
        self.block: _Block | None = None
        self.notes: dict[str, None] = {}
        self.said: dict[str, str] = {}  # each element's text as typed -> what it says

    def spoken(self, root: _Element) -> Spoken:
        self.element(root, self.speed, top=True)
        self.close()
        if sum(self.silence_s) > MAX_SILENCE_S:
            raise _SsmlError(f"the breaks add up to {sum(self.silence_s):g} s; at most "
                             f"{MAX_SILENCE_S:g} s of silence a request.")
        return self.assemble()

    def assemble(self) -> Spoken:
        """Each block's text cleaned and cut into whole-sentence chunks; silences in samples."""
        rate = self.engine.sample_rate
        chunks, speeds, silences, typed = [], [], [round(self.silence_s[0] * rate)], []
        for block, after in zip(self.blocks, self.silence_s[1:]):
            pieces = textproc.chunk(textproc.clean("".join(block.spoken)), self.longest)
            if not pieces:
                silences[-1] += round(after * rate)
                continue
            chunks += pieces
            speeds += [block.speed] * len(pieces)
            silences += [0] * (len(pieces) - 1) + [round(after * rate)]
            typed.append(textproc.clean("".join(block.typed)))
        said = " ".join(chunks)
        words = _PHONEMES.sub("", said)  # what the model reads as text
        if not (textproc.has_speakable(words) or _PHONEMES.search(said)):
            raise _SsmlError("there is nothing to speak: no letters or digits inside <speak>.")
        foreign = textproc.foreign_letters(words, self.engine.language)
        if foreign and not textproc.has_speakable(words.translate(dict.fromkeys(map(ord, foreign)))):
            raise _SsmlError(f"model {self.engine.name!r} speaks {self.engine.language!r} and "
                             f"cannot pronounce any of this text (letters "
                             f"{textproc.letters_shown(foreign, 12)}); choose a model "
                             "for the text's language.")
        if len(said) > self.limit:
            raise _SsmlError(f"spelled out (numbers as words), the text is {len(said)} characters "
                             f"long; the limit is {self.limit}. Shorten it.")
        return Spoken(tuple(chunks), tuple(speeds), tuple(silences), " ".join(typed),
                      " ".join(self.notes), self.english, self.said)

    # --- the walk ---------------------------------------------------------------------------

    def add(self, spoken: str, typed: str, speed: float) -> None:
        if self.block is not None and self.block.speed != speed:
            self.close()
        if self.block is None:
            self.block = _Block(speed)
        self.block.spoken.append(spoken)
        self.block.typed.append(typed)

    def replaced(self, el: _Element, spoken: str, speed: float) -> None:
        """An element whose text is said as `spoken` (<sub>, <say-as>, <phoneme>)."""
        typed = _only_text(el)
        self.said[textproc.clean(typed)] = textproc.clean(spoken)
        self.add(spoken, typed, speed)

    def close(self, silence_s: float = 0.0) -> None:
        """End the current block (a sentence boundary), then `silence_s` of silence."""
        if self.block is not None and textproc.clean("".join(self.block.spoken)):
            self.blocks.append(self.block)
            self.silence_s.append(0.0)
        self.block = None
        self.silence_s[-1] += silence_s

    def children(self, element: _Element, speed: float) -> None:
        for child in element.children:
            if isinstance(child, str):
                self.add(self.prepared(child), child, speed)
            else:
                self.element(child, speed)

    def element(self, el: _Element, speed: float, top: bool = False) -> None:
        tag = el.tag
        if tag == "speak" and not top:
            raise _SsmlError(f"{el.where()} is inside another <speak>; use one <speak> a document.")
        if tag in ("speak", "p", "s"):
            self.close()
            self.children(el, speed)
            self.close()
        elif tag == "break":
            self.close(_break_seconds(el))
        elif tag == "prosody":
            self.children(el, self.prosody(el, speed))
        elif tag == "emphasis":
            level = el.attrs.get("level", "moderate")
            if level not in EMPHASIS_LEVELS:
                raise _SsmlError(f"{el.where()}: level={level!r} is not one of "
                                 f"{', '.join(sorted(EMPHASIS_LEVELS))}.")
            self.notes["<emphasis> has no effect: no model here can stress a word."] = None
            self.children(el, speed)
        elif tag == "sub":
            alias = el.attrs.get("alias", "").strip()
            if not alias:
                raise _SsmlError(f"{el.where()} needs alias=\"what to say\".")
            self.replaced(el, self.prepared(alias), speed)
        elif tag == "say-as":
            self.replaced(el, self.prepared(self.say_as(el)), speed)
        elif tag == "phoneme":
            self.replaced(el, self.phonemes(el), speed)
        else:
            raise _SsmlError(f"<{tag}> is not supported (line {el.line}); the elements read "
                             f"here are {', '.join(f'<{t}>' for t in ELEMENTS)}.")

    def prepared(self, text: str) -> str:
        """Plain text as the studio prepares it: English gets numbers and the like spelled out."""
        if not (self.english and text.strip()):
            return text
        # expand() trims; the spaces around it are what separates it from the next element
        return text[:len(text) - len(text.lstrip())] + textproc.expand(text) + text[len(text.rstrip()):]

    def prosody(self, el: _Element, speed: float) -> float:
        other = sorted(set(el.attrs) - {"rate"})
        if other:
            raise _SsmlError(f"{el.where()}: {', '.join(other)} is not supported; only rate is.")
        if "rate" not in el.attrs:
            return speed
        factor = _rate(el)
        if not self.engine.supports_speed:
            self.notes[f"<prosody rate> was ignored: model {self.engine.name!r} "
                       f"({self.engine.family}) has no speed control."] = None
            return speed
        new, (low, high) = speed * factor, self.speeds
        if not low <= new <= high:
            raise _SsmlError(f"{el.where()}: rate={el.attrs['rate']!r} makes the speed {new:g}; "
                             f"it must stay between {low:g} and {high:g}.")
        return new

    def say_as(self, el: _Element) -> str:
        kind = SAY_AS.get(el.attrs.get("interpret-as", ""))
        if kind is None:
            raise _SsmlError(f"{el.where()}: interpret-as={el.attrs.get('interpret-as', '')!r} "
                             "is not supported; use characters, cardinal, ordinal, date or "
                             "telephone.")
        return _SAY_AS_READERS[kind](el, _only_text(el).strip())

    def phonemes(self, el: _Element) -> str:
        """The pronunciation as Piper's raw phoneme blocks, one per word: `[[ˈtəmɑːtoʊ]]`."""
        symbols = getattr(self.engine, "phoneme_symbols", None)
        if symbols is None:
            raise _SsmlError(f"{el.where()}: model {self.engine.name!r} ({self.engine.family}) "
                             "takes no phonemes; <phoneme> needs a Piper voice.")
        alphabet = el.attrs.get("alphabet", "ipa")
        if alphabet != "ipa":
            raise _SsmlError(f"{el.where()}: alphabet={alphabet!r} is not supported; use "
                             "alphabet=\"ipa\".")
        ph = textproc.clean(el.attrs.get("ph", ""))
        if not ph:
            raise _SsmlError(f"{el.where()} needs ph=\"...\" (the pronunciation in IPA).")
        unknown = sorted(set(ph) - set(symbols) - {" "})
        if unknown:
            raise _SsmlError(f"{el.where()}: this voice has no phoneme {' '.join(unknown)} "
                             f"(in ph={ph!r}).")
        return " ".join(f"[[{word}]]" for word in ph.split(" "))


_PHONEMES = re.compile(r"\[\[[^\]]*\]\]")
_PUNCTUATION = "!\"'(),-.:;?\u2014\u2026\u201c\u201d"


def _only_text(el: _Element) -> str:
    if any(not isinstance(c, str) for c in el.children):
        raise _SsmlError(f"{el.where()} may hold only text, not other elements.")
    return el.text()


def _break_seconds(el: _Element) -> float:
    if el.children and el.text().strip():
        raise _SsmlError(f"{el.where()} holds text; a break is empty: <break time=\"750ms\"/>.")
    if "time" in el.attrs:
        m = _TIME.fullmatch(el.attrs["time"])
        if m is None:
            raise _SsmlError(f"{el.where()}: time={el.attrs['time']!r} is not a time; write it "
                             "like 750ms or 1.5s.")
        seconds = float(m.group(1)) / (1000.0 if m.group(2).lower() == "ms" else 1.0)
        if seconds > MAX_BREAK_S:
            raise _SsmlError(f"{el.where()}: time={el.attrs['time']!r} is longer than "
                             f"{MAX_BREAK_S:g} s, the longest break.")
        return seconds
    strength = el.attrs.get("strength", "medium")
    if strength not in STRENGTHS:
        raise _SsmlError(f"{el.where()}: strength={strength!r} is not one of "
                         f"{', '.join(STRENGTHS)}.")
    return STRENGTHS[strength]


def _rate(el: _Element) -> float:
    """<prosody rate> as a multiple: x-slow...x-fast, "80%" (of normal), "+20%"/"-20%", "1.2"."""
    rate = el.attrs["rate"].strip()
    if rate in RATES:
        return RATES[rate]
    m = _PERCENT.fullmatch(rate)
    if m is not None:
        value = float(m.group(2)) / 100
        factor = value if not m.group(1) else 1 + value if m.group(1) == "+" else 1 - value
    elif _NUMBER.fullmatch(rate):
        factor = float(rate)
    else:
        raise _SsmlError(f"{el.where()}: rate={rate!r} is not a rate; use x-slow, slow, medium, "
                         "fast, x-fast or a percentage such as 80%.")
    if factor <= 0:
        raise _SsmlError(f"{el.where()}: rate={rate!r} must be above zero.")
    return factor


def _characters(el: _Element, text: str) -> str:
    """Each letter and digit on its own ("SQL" -> "S, Q, L"): espeak names a lone capital."""
    signs = [ch.upper() for ch in text if ch.isalnum()]
    if not signs:
        raise _SsmlError(f"{el.where()}: there are no letters or digits to spell.")
    return ", ".join(signs)


def _cardinal(el: _Element, text: str) -> str:
    """A number as a count: thousands separated, so that 1987 is not read as a year."""
    digits = text.replace(",", "")
    if not _NUMBER.fullmatch(digits):
        raise _SsmlError(f"{el.where()}: {text!r} is not a number.")
    whole, _, fraction = digits.strip().partition(".")
    return f"{int(whole):,}" + (f".{fraction}" if fraction else "")


def _ordinal(el: _Element, text: str) -> str:
    digits = text.replace(",", "").strip()
    if not digits.isdigit():
        raise _SsmlError(f"{el.where()}: {text!r} is not a whole number.")
    n = int(digits)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _date(el: _Element, text: str) -> str:
    """A numeric date in the element's format (ymd, mdy, dmy; default: ISO if the year comes
    first, else mdy) as ISO, which the studio reads as it reads dates; anything else as typed."""
    if not _NUMERIC_DATE.fullmatch(text):
        return text
    parts = _DATE_PARTS.findall(text)
    fmt = el.attrs.get("format") or ("ymd" if len(parts[0]) == 4 else "mdy")
    if fmt not in _DATE_ORDERS:
        raise _SsmlError(f"{el.where()}: format={fmt!r} is not supported; use ymd, mdy or dmy.")
    y, m, d = (int(parts[i]) for i in _DATE_ORDERS[fmt])
    if not (1 <= m <= 12 and 1 <= d <= 31):
        raise _SsmlError(f"{el.where()}: {text!r} is not a date in {fmt} order.")
    return f"{y:04d}-{m:02d}-{d:02d}"


def _telephone(el: _Element, text: str) -> str:
    """Digits one by one, groups apart: "+1 555 123" -> "plus 1, 5 5 5, 1 2 3"."""
    groups = _DATE_PARTS.findall(text)
    if not groups:
        raise _SsmlError(f"{el.where()}: {text!r} has no digits to read as a telephone number.")
    said = ", ".join(" ".join(group) for group in groups)
    return f"plus {said}" if text.startswith("+") else said


_SAY_AS_READERS = {"characters": _characters, "cardinal": _cardinal, "ordinal": _ordinal,
                   "date": _date, "telephone": _telephone}
