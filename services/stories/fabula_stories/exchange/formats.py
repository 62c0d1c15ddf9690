"""A document as a file: Markdown, plain text or EPUB 3 (a story's followed
path, a narrative's sections).

Pure functions of an `ExportDocument`: no database, no gRPC. The EPUB is made
with EbookLib (see docs/architecture.md, "Export and import"): it writes the
uncompressed `mimetype` entry first, META-INF/container.xml, the OPF package
with the spine, the EPUB 3 navigation document and an NCX for older readers.
"""

from __future__ import annotations

import html
import io
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from ebooklib import epub


class Format(StrEnum):
    markdown = "md"
    text = "txt"
    epub = "epub"


CONTENT_TYPES = {
    Format.markdown: "text/markdown; charset=utf-8",
    Format.text: "text/plain; charset=utf-8",
    Format.epub: "application/epub+zip",
}

SCENE_BREAK = "* * *"
LANGUAGE = "en"
# Long enough to tell stories apart, short enough for any file system.
FILENAME_STEM_MAX_LENGTH = 80


@dataclass(frozen=True)
class Section:
    text: str
    # None: an untitled part (a story's segment), set apart by a scene break
    # and called "Part n" in an EPUB's table of contents.
    heading: str | None = None


@dataclass(frozen=True)
class ExportDocument:
    id: uuid.UUID
    title: str
    genre: str
    author: str
    # In reading order; an EPUB has a chapter per section.
    sections: list[Section]
    characters: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content_type: str
    data: bytes


def render(story: ExportDocument, fmt: Format) -> ExportFile:
    renderers = {Format.markdown: markdown, Format.text: plain_text, Format.epub: epub_book}
    return ExportFile(
        filename=f"{filename_stem(story.title)}.{fmt.value}",
        content_type=CONTENT_TYPES[fmt],
        data=renderers[fmt](story),
    )


def filename_stem(title: str) -> str:
    """The title as a safe ASCII file name: accents dropped, anything but
    letters and digits a single hyphen; "story" when nothing is left."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    slug = slug[:FILENAME_STEM_MAX_LENGTH].rstrip("-")
    return slug or "story"


def _paragraphs(text: str) -> list[str]:
    """A segment's paragraphs: blocks separated by blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [block.strip() for block in re.split(r"\n\s*\n", text) if block.strip()]


def _metadata(story: ExportDocument) -> list[tuple[str, str]]:
    fields = [("Genre", story.genre)]
    if story.characters:
        fields.append(("Characters", ", ".join(story.characters)))
    if story.author:
        fields.append(("Author", story.author))
    return fields


# --- Markdown -------------------------------------------------------------------

# Characters that are markup anywhere in a line, and line starts that make a
# line a heading, list item, quote, rule or table: escaped so the text reads
# as written (CommonMark lets any ASCII punctuation be backslash-escaped).
_INLINE_MARKUP = re.compile(r"([\\`*_\[\]<>|~])")
_BLOCK_START = re.compile(r"^(\s*)([#>+=-])", re.MULTILINE)
_ORDERED_ITEM = re.compile(r"^(\s*\d+)([.)])", re.MULTILINE)


def _markdown_escape(text: str) -> str:
    escaped = _INLINE_MARKUP.sub(r"\\\1", text)
    escaped = _BLOCK_START.sub(r"\1\\\2", escaped)
    return _ORDERED_ITEM.sub(r"\1\\\2", escaped)


def markdown(story: ExportDocument) -> bytes:
    lines = [f"# {_markdown_escape(story.title)}", ""]
    lines.append(
        "*"
        + " · ".join(f"{name}: {_markdown_escape(value)}" for name, value in _metadata(story))
        + "*"
    )
    for number, section in enumerate(story.sections):
        lines.append("")
        if section.heading is not None:
            lines += [f"## {_markdown_escape(section.heading)}", ""]
        elif number:
            lines += [SCENE_BREAK, ""]
        lines.append("\n\n".join(_markdown_escape(p) for p in _paragraphs(section.text)))
    return ("\n".join(lines) + "\n").encode()


# --- Plain text -----------------------------------------------------------------


def plain_text(story: ExportDocument) -> bytes:
    lines = [story.title, "=" * max(len(story.title), 3), ""]
    lines += [f"{name}: {value}" for name, value in _metadata(story)]
    for number, section in enumerate(story.sections):
        lines.append("")
        if section.heading is not None:
            lines += [section.heading, "-" * max(len(section.heading), 3), ""]
        elif number:
            lines += [SCENE_BREAK.center(40).rstrip(), ""]
        lines.append("\n\n".join(_paragraphs(section.text)))
    return ("\n".join(lines) + "\n").encode()


# --- EPUB 3 ---------------------------------------------------------------------

_STYLE = """\
body { font-family: serif; line-height: 1.5; margin: 0 5%; }
h1 { font-size: 1.3em; text-align: center; margin: 2em 0 1em; }
p { text-indent: 1.5em; margin: 0; }
p.first { text-indent: 0; }
"""

# XML 1.0 has no place for control characters but tab and line ends (nor for unpaired
# surrogates); a text holding one would make the chapter unreadable. The
# vertical tab and form feed are spaces to a reader; the rest are dropped.
_NOT_XML = re.compile("[\x00-\x08\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_XML_SPACE = str.maketrans({"\x0b": " ", "\x0c": " "})


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("", text.translate(_XML_SPACE))


def _xml_text(text: str) -> str:
    return html.escape(_xml_safe(text), quote=True)


def _chapter_body(heading: str, text: str) -> str:
    paragraphs = [
        ('<p class="first">' if index == 0 else "<p>")
        + "<br/>".join(_xml_text(line) for line in paragraph.split("\n"))
        + "</p>"
        for index, paragraph in enumerate(_paragraphs(text))
    ]
    return f"<h1>{_xml_text(heading)}</h1>\n" + "\n".join(paragraphs)


def epub_book(story: ExportDocument) -> bytes:
    book = epub.EpubBook()
    book.set_identifier(f"urn:uuid:{story.id}")
    book.set_title(_xml_safe(story.title))
    book.set_language(LANGUAGE)
    if story.author:
        book.add_author(_xml_safe(story.author))
    book.add_metadata("DC", "subject", _xml_safe(story.genre))

    style = epub.EpubItem(
        uid="style", file_name="style/book.css", media_type="text/css", content=_STYLE
    )
    book.add_item(style)
    chapters = []
    for number, section in enumerate(story.sections, start=1):
        heading = section.heading if section.heading is not None else f"Part {number}"
        chapter = epub.EpubHtml(
            uid=f"part-{number}",
            title=_xml_safe(heading),
            file_name=f"part-{number:04d}.xhtml",
            lang=LANGUAGE,
        )
        chapter.content = _chapter_body(heading, section.text)
        chapter.add_item(style)
        book.add_item(chapter)
        chapters.append(chapter)

    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    # The reading order is the story's; the navigation document stays out of
    # it (readers offer it as the table of contents).
    book.spine = chapters

    out = io.BytesIO()
    epub.write_epub(out, book, {"raise_exceptions": True})
    return out.getvalue()
