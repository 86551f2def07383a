"""Which files may be sent, decided by their content, and safe display names.

The allow-list (ASVS 5.2.2): PDF, Office Open XML (docx/xlsx/pptx), OpenDocument (odt/ods/odp),
XML (the Common Transfer File), CSV, plain text, JPEG, PNG. HTML, SVG, executables, scripts and
other archives are refused. Only the start of the file is looked at, because uploads are streamed
straight into encrypted storage; the first ``SNIFF_BYTES`` are enough for every signature here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

SNIFF_BYTES = 8192
ALLOWED_DESCRIPTION = (
    "PDF, Word, Excel or PowerPoint (.docx, .xlsx, .pptx), OpenDocument, XML, CSV, text, JPEG or PNG"
)


@dataclass(frozen=True)
class FileKind:
    """A recognised, allowed kind of file."""

    name: str
    content_type: str
    extensions: tuple[str, ...]


PDF = FileKind("PDF", "application/pdf", (".pdf",))
JPEG = FileKind("JPEG image", "image/jpeg", (".jpg", ".jpeg"))
PNG = FileKind("PNG image", "image/png", (".png",))
XML = FileKind("XML", "application/xml", (".xml", ".ctf"))
CSV = FileKind("CSV", "text/csv", (".csv",))
TEXT = FileKind("text", "text/plain", (".txt", ".text", ""))
DOCX = FileKind(
    "Word document", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", (".docx",)
)
XLSX = FileKind(
    "Excel workbook", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (".xlsx",)
)
PPTX = FileKind(
    "PowerPoint presentation",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    (".pptx",),
)
ODF_KINDS = {
    "application/vnd.oasis.opendocument.text": FileKind(
        "OpenDocument text", "application/vnd.oasis.opendocument.text", (".odt",)
    ),
    "application/vnd.oasis.opendocument.spreadsheet": FileKind(
        "OpenDocument spreadsheet", "application/vnd.oasis.opendocument.spreadsheet", (".ods",)
    ),
    "application/vnd.oasis.opendocument.presentation": FileKind(
        "OpenDocument presentation", "application/vnd.oasis.opendocument.presentation", (".odp",)
    ),
}
OOXML_BY_EXTENSION = {".docx": DOCX, ".xlsx": XLSX, ".pptx": PPTX}
ALLOWED_EXTENSIONS = frozenset(
    extension
    for kind in (PDF, JPEG, PNG, XML, CSV, TEXT, DOCX, XLSX, PPTX, *ODF_KINDS.values())
    for extension in kind.extensions
)
# First entries Office writes into an OOXML package; an ordinary zip starts with anything else.
_OOXML_FIRST_ENTRIES = re.compile(rb"^(\[Content_Types\]\.xml|_rels/\.rels|docProps/|word/|xl/|ppt/)")
_MARKUP_REFUSED = re.compile(
    rb"<\s*(!doctype\s+(html|svg)|html|svg|script|body|head|iframe|xhtml)\b", re.IGNORECASE
)
_TEXT_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class FileRefused(ValueError):
    """The file is not of an allowed kind; the message says why and what is allowed."""


def identify(head: bytes, filename: str) -> FileKind:
    """The kind of file whose first bytes are ``head``; raise :class:`FileRefused` if not allowed."""
    extension = _extension(filename)
    if extension not in ALLOWED_EXTENSIONS:
        # Named before the content is looked at: ".sh", ".js" or ".html" never becomes "just text".
        raise FileRefused(f"Files ending in {extension} cannot be sent. Send {ALLOWED_DESCRIPTION} files.")
    kind = _sniff(head, extension)
    if extension not in kind.extensions:
        shown = extension or "no extension"
        raise FileRefused(
            f"The file's contents are {kind.name} but its name ends in {shown}. "
            f"Rename it to end in {kind.extensions[0] or 'no extension'} and try again."
        )
    return kind


def _sniff(head: bytes, extension: str) -> FileKind:
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"PK\x03\x04"):
        return _sniff_zip(head, extension)
    if head.startswith((b"MZ", b"\x7fELF", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe", b"#!")):
        raise FileRefused(f"Programs and scripts cannot be sent. Send {ALLOWED_DESCRIPTION} files.")
    return _sniff_text(head, extension)


def _sniff_zip(head: bytes, extension: str) -> FileKind:
    # Local file header: name length at offset 26, name at 30 (APPNOTE.TXT 4.3.7).
    name_length = int.from_bytes(head[26:28], "little")
    first_name = head[30 : 30 + name_length]
    if first_name == b"mimetype":
        extra_length = int.from_bytes(head[28:30], "little")
        start = 30 + name_length + extra_length
        mimetype = head[start : start + 80].split(b"PK", 1)[0].decode("ascii", "replace").strip()
        for prefix, kind in ODF_KINDS.items():
            if mimetype.startswith(prefix):
                return kind
    elif _OOXML_FIRST_ENTRIES.match(first_name) and extension in OOXML_BY_EXTENSION:
        return OOXML_BY_EXTENSION[extension]
    raise FileRefused(f"Archives such as .zip files cannot be sent. Send {ALLOWED_DESCRIPTION} files.")


def _sniff_text(head: bytes, extension: str) -> FileKind:
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    if _TEXT_CONTROL.search(body):
        raise FileRefused(f"This kind of file cannot be sent. Send {ALLOWED_DESCRIPTION} files.")
    if _MARKUP_REFUSED.search(body):
        raise FileRefused(f"Web pages and SVG images cannot be sent. Send {ALLOWED_DESCRIPTION} files.")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as problem:
        # The sample may end inside a multi-byte character; anything earlier is a real error.
        if problem.start < len(body) - 3:
            try:
                body.decode("cp1252")
            except UnicodeDecodeError:
                raise FileRefused(
                    f"This kind of file cannot be sent. Send {ALLOWED_DESCRIPTION} files."
                ) from None
    if body.lstrip().startswith(b"<?xml") or (body.lstrip().startswith(b"<") and extension in XML.extensions):
        return XML
    if extension == ".csv":
        return CSV
    return TEXT


def _extension(filename: str) -> str:
    suffix = PurePosixPath(filename.lower()).suffix
    return suffix if suffix else ""


# Bidirectional overrides and isolates can make "exe.pdf" display as "fdp.exe" (CVE-2021-42574's trick).
_BIDI_AND_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_UNSAFE_NAME_CHARS = re.compile(r'[\x00-\x1f\x7f"*:<>?|\\/]')


def sanitise_filename(filename: str, fallback: str = "document") -> str:
    """A display name with path parts, control characters and direction overrides removed."""
    name = PureWindowsPath(PurePosixPath(filename.replace("\\", "/")).name).name
    name = unicodedata.normalize("NFC", name)
    name = _BIDI_AND_INVISIBLE.sub("", name)
    name = _UNSAFE_NAME_CHARS.sub("_", name)
    name = name.strip().strip(".").strip()
    if len(name) > 200:
        stem, dot, suffix = name.rpartition(".")
        name = (stem[: 200 - len(suffix) - 1] + dot + suffix) if dot and len(suffix) <= 10 else name[:200]
    return name or fallback
