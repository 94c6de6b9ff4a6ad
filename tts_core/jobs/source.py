"""A job's input read into chapters: plain text (one chapter), Markdown (its headings) or an EPUB (its spine and table of contents).

Each chapter is `(title, text)`, the text as a person would read it aloud (markup gone, a
heading ended as a sentence). Plain text is kept exactly as given, so a job of it speaks
what `/v1/audio/speech` speaks for the same text. A file that is not what it claims to
be raises `InputError` with a sentence that says so.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote
from xml.etree import ElementTree

from ..errors import InputError

FORMATS = ("text", "markdown", "epub")
# An EPUB's documents, unpacked, are read up to this much in all (a zip bomb stops here).
MAX_EPUB_UNPACKED_BYTES = 256 * 2**20
_SENTENCE_END = ".!?…:;"


@dataclass(frozen=True)
class Chapter:
    title: str
    text: str


def read_input(data: bytes | str, input_format: str, filename: str | None = None) -> list[Chapter]:
    """`data` as chapters, in order; `input_format` one of FORMATS, or "" to go by `filename`
    (a nameless file that is a zip archive is taken for an EPUB)."""
    fmt = input_format or format_for(filename)
    if not input_format and filename is None and isinstance(data, bytes) and data[:4] == b"PK\x03\x04":
        fmt = "epub"
    if fmt not in FORMATS:
        raise InputError(f"Unknown input_format {fmt!r}; choose one of {', '.join(FORMATS)}.",
                         param="input_format")
    if fmt == "epub":
        if isinstance(data, str):
            raise InputError("An EPUB is a file: upload it (multipart), not as text.",
                             param="file")
        return read_epub(data)
    text = _decode(data) if isinstance(data, bytes) else data
    if fmt == "markdown":
        return read_markdown(text)
    return [Chapter("Text", text)]


def format_for(filename: str | None) -> str:
    """The input format a file's name says: .epub, .md/.markdown, else text."""
    name = (filename or "").lower()
    if name.endswith(".epub"):
        return "epub"
    if name.endswith((".md", ".markdown")):
        return "markdown"
    return "text"


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"The file is not UTF-8 text (byte {e.start}); save it as UTF-8, "
                         "or upload an EPUB as an .epub file.", param="file") from e


def as_sentence(title: str) -> str:
    """A heading spoken as a sentence of its own (not run into the paragraph after it)."""
    title = title.strip()
    return title if not title or title[-1] in _SENTENCE_END else f"{title}."


# --- Markdown -------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE = (
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),  # links: their text
    (re.compile(r"<[^>\n]+>"), ""),  # inline HTML tags
    (re.compile(r"`+([^`]*)`+"), r"\1"),  # code spans
    (re.compile(r"(\*{1,3}|_{1,3})(\S(?:.*?\S)?)\1"), r"\2"),  # emphasis
)
_LINE_MARKS = re.compile(r"^\s{0,3}(?:>\s?)+|^\s*(?:[-*+]|\d+[.)])\s+(?=\S)")
_RULE = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def read_markdown(text: str) -> list[Chapter]:
    """Chapters at the document's top heading level; lower headings are spoken as sentences.
    Text before the first heading is a chapter of its own when it has something to say."""
    lines = text.splitlines()
    levels = [len(m.group(1)) for line in lines if (m := _HEADING.match(line))]
    top = min(levels) if levels else None
    chapters: list[tuple[str, list[str]]] = [("Opening", [])]
    for line in _prose_lines(lines):
        heading = _HEADING.match(line)
        if heading and len(heading.group(1)) == top:
            title = _inline(heading.group(2))
            chapters.append((title or f"Chapter {len(chapters)}", [as_sentence(title)]))
        elif heading:
            chapters[-1][1].append(as_sentence(_inline(heading.group(2))))
        else:
            chapters[-1][1].append(_inline(_LINE_MARKS.sub("", line)))
    out = [Chapter(title, "\n".join(body).strip()) for title, body in chapters]
    return [c for c in out if any(ch.isalnum() for ch in c.text)]


def _prose_lines(lines: list[str]):
    """The lines, without horizontal rules, and without the fences of code blocks."""
    for line in lines:
        if _RULE.match(line) or _FENCE.match(line):
            yield ""
        else:
            yield line


def _inline(text: str) -> str:
    for pattern, replace in _INLINE:
        text = pattern.sub(replace, text)
    return text.strip()


# --- EPUB -----------------------------------------------------------------------------------

_NS = {"c": "urn:oasis:names:tc:opendocument:xmlns:container", "opf": "http://www.idpf.org/2007/opf",
       "ncx": "http://www.daisy.org/z3986/2005/ncx/", "x": "http://www.w3.org/1999/xhtml"}


def read_epub(data: bytes) -> list[Chapter]:
    """One chapter per spine document that has text, in reading order, named by the book's
    table of contents (EPUB 3 nav or EPUB 2 NCX), else by its first heading."""
    try:
        book = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InputError("The file is not an EPUB: it is not a zip archive.", param="file") from None
    with book:
        opf_path = _rootfile(book)
        opf = _xml(book, opf_path)
        base = posixpath.dirname(opf_path)
        items = {i.get("id"): i for i in opf.iterfind("opf:manifest/opf:item", _NS)}
        spine = [items[r.get("idref")] for r in opf.iterfind("opf:spine/opf:itemref", _NS)
                 if r.get("idref") in items]
        if not spine:
            raise InputError("The EPUB has no reading order (its OPF spine is empty).", param="file")
        titles = _toc(book, opf, items, base)
        unpacked, chapters = 0, []
        for item in spine:
            path = _join(base, item.get("href", ""))
            info = _member(book, path)
            unpacked += info.file_size
            if unpacked > MAX_EPUB_UNPACKED_BYTES:
                raise InputError("The EPUB unpacks to more than "
                                 f"{MAX_EPUB_UNPACKED_BYTES // 2**20} MiB of text.", param="file")
            heading, text = html_text(book.read(info).decode("utf-8", errors="replace"))
            if any(ch.isalnum() for ch in text):
                chapters.append(Chapter(titles.get(path) or heading or f"Chapter {len(chapters) + 1}",
                                        text))
    if not chapters:
        raise InputError("The EPUB has no text to speak.", param="file")
    return chapters


def _rootfile(book: zipfile.ZipFile) -> str:
    try:
        container = ElementTree.fromstring(book.read("META-INF/container.xml"))
    except KeyError:
        raise InputError("The file is not an EPUB: it has no META-INF/container.xml.",
                         param="file") from None
    except ElementTree.ParseError as e:
        raise InputError(f"The EPUB's META-INF/container.xml is not valid XML: {e}.",
                         param="file") from None
    root = container.find("c:rootfiles/c:rootfile", _NS)
    if root is None or not root.get("full-path"):
        raise InputError("The EPUB's container names no package (OPF) file.", param="file")
    return root.get("full-path")


def _member(book: zipfile.ZipFile, path: str) -> zipfile.ZipInfo:
    try:
        return book.getinfo(path)
    except KeyError:
        raise InputError(f"The EPUB lists {path!r}, which is not in the archive.",
                         param="file") from None


def _xml(book: zipfile.ZipFile, path: str) -> ElementTree.Element:
    info = _member(book, path)
    if info.file_size > MAX_EPUB_UNPACKED_BYTES:
        raise InputError(f"The EPUB's {path!r} is too large.", param="file")
    try:
        return ElementTree.fromstring(book.read(info))
    except ElementTree.ParseError as e:
        raise InputError(f"The EPUB's {path!r} is not valid XML: {e}.", param="file") from None


def _join(base: str, href: str) -> str:
    return posixpath.normpath(posixpath.join(base, unquote(href.split("#", 1)[0])))


def _toc(book: zipfile.ZipFile, opf, items: dict, base: str) -> dict[str, str]:
    """Document path -> its first title in the table of contents (nav, else NCX); {} if none."""
    nav = next((i for i in items.values() if "nav" in (i.get("properties") or "").split()), None)
    ncx_id = opf.find("opf:spine", _NS).get("toc")
    titles: dict[str, str] = {}
    try:
        if nav is not None:
            path = _join(base, nav.get("href", ""))
            for link in _xml(book, path).iter(f"{{{_NS['x']}}}a"):
                target = _join(posixpath.dirname(path), link.get("href", ""))
                titles.setdefault(target, " ".join("".join(link.itertext()).split()))
        elif ncx_id in items:
            path = _join(base, items[ncx_id].get("href", ""))
            for point in _xml(book, path).iter(f"{{{_NS['ncx']}}}navPoint"):
                label = point.find("ncx:navLabel/ncx:text", _NS)
                content = point.find("ncx:content", _NS)
                if label is not None and content is not None:
                    target = _join(posixpath.dirname(path), content.get("src", ""))
                    titles.setdefault(target, " ".join((label.text or "").split()))
    except InputError:
        return {}  # a broken table of contents: titles come from the headings instead
    return titles


_BLOCKS = {"p", "div", "br", "li", "tr", "blockquote", "section", "article", "h1", "h2", "h3",
           "h4", "h5", "h6", "dt", "dd", "pre", "figcaption", "hr"}
_SKIPPED = {"script", "style", "head", "title", "svg", "math"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


class _Text(HTMLParser):
    """An (X)HTML document's readable text: blocks as paragraphs, headings as sentences."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.heading: str | None = None  # the first heading's text
        self._current: list[str] = []
        self._skip = 0
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        if tag in _SKIPPED:
            self._skip += 1
        elif tag in _BLOCKS:
            self._end_block()
            self._in_heading = tag in _HEADINGS

    def handle_endtag(self, tag):
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self._end_block()

    def handle_data(self, data):
        if not self._skip:
            self._current.append(data)

    def _end_block(self):
        text = " ".join("".join(self._current).split())
        self._current = []
        if text:
            if self._in_heading:
                self.heading = self.heading or text
                text = as_sentence(text)
            self.paragraphs.append(text)
        self._in_heading = False


def html_text(document: str) -> tuple[str | None, str]:
    """(the first heading, the text in paragraphs) of an (X)HTML document."""
    parser = _Text()
    parser.feed(document)
    parser.close()
    parser._end_block()
    return parser.heading, "\n\n".join(parser.paragraphs)
