"""Response headers for a downloaded document: always an attachment, never rendered by the browser."""

from __future__ import annotations

from urllib.parse import quote

from portal.models import Document


def attachment_headers(document: Document) -> dict[str, str]:
    """RFC 6266 Content-Disposition with an ASCII fallback and the UTF-8 ``filename*``, and a
    sandboxing CSP in case a browser renders it anyway."""
    name = document.display_filename
    ascii_fallback = (
        "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\%;' else "_" for ch in name) or "document"
    )
    return {
        "Content-Type": document.content_type,
        "Content-Length": str(document.plaintext_size or 0),
        "Content-Disposition": f"attachment; filename=\"{ascii_fallback}\"; filename*=UTF-8''{quote(name, safe='')}",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "X-Download-Options": "noopen",
    }
