"""Reading a multipart upload as a stream, so a document goes from the network into encryption
without ever being held whole in memory or written to disk in the clear.

Werkzeug's ordinary form parsing spools large files to a temporary file, so the upload view
parses the body itself with Werkzeug's sans-IO ``MultipartDecoder``: the small fields that come
before the file (CSRF token, category) are collected, then the file part is handed out as a
readable stream. Browsers send fields in document order, so the form puts the file last.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

NETWORK_READ_BYTES = 64 * 1024
MAX_FIELD_BYTES = 4096
MAX_PARTS = 20


class UploadMalformed(ValueError):
    """The request body is not the multipart form the page sends."""


class FormTooLarge(UploadMalformed):
    """Too many parts, or a field or part header too long: a browser never sends this, so it is
    refused outright (413) rather than explained as a failed upload."""


class UploadTooLarge(ValueError):
    """The file is larger than the limit (raised while streaming, before anything is kept)."""


@dataclass
class StreamedForm:
    """The fields before the file, and the file as a stream."""

    fields: dict[str, str]
    filename: str
    file: FilePartReader
    extra: dict[str, str] = field(default_factory=dict)


class FilePartReader:
    """A readable stream of one file part, enforcing a size limit as bytes arrive."""

    def __init__(self, events: Iterator[Data | Field | File | Epilogue], limit: int) -> None:
        self._events = events
        self._limit = limit
        self._buffer = b""
        self._done = False
        self.bytes_read = 0

    def readable(self) -> bool:
        """Always true (lets stream-consuming libraries accept it)."""
        return True

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes of the file (all remaining if negative)."""
        while not self._done and (size < 0 or len(self._buffer) < size):
            event = next(self._events, None)
            if not isinstance(event, Data):
                raise UploadMalformed("the file part ended unexpectedly")
            self._buffer += event.data
            self.bytes_read += len(event.data)
            if self.bytes_read > self._limit:
                raise UploadTooLarge(f"the file is larger than {self._limit} bytes")
            if not event.more_data:
                self._done = True
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def parse_streamed_upload(stream: BinaryIO, boundary: bytes, *, file_field: str, limit: int) -> StreamedForm:
    """Read fields up to the file part named ``file_field``; return them and the file stream."""
    # Werkzeug's memory cap applies to its unparsed buffer, which holds up to one network read;
    # the field-size cap that matters is enforced below.
    decoder = MultipartDecoder(boundary, max_form_memory_size=4 * NETWORK_READ_BYTES, max_parts=MAX_PARTS)
    events = _events(decoder, stream)
    fields: dict[str, str] = {}
    current: str | None = None
    value = b""
    for event in events:
        if isinstance(event, Field):
            current, value = event.name, b""
        elif isinstance(event, Data) and current is not None:
            value += event.data
            if len(value) > MAX_FIELD_BYTES:
                raise FormTooLarge("a form field is too long")
            if not event.more_data:
                fields[current] = value.decode("utf-8", "replace")
                current = None
        elif isinstance(event, File):
            if event.name != file_field:
                raise UploadMalformed("unexpected file field")
            return StreamedForm(fields, event.filename, FilePartReader(events, limit))
        elif isinstance(event, Epilogue):
            break
    raise UploadMalformed("no file was chosen")


def _events(decoder: MultipartDecoder, stream: BinaryIO) -> Iterator[Data | Field | File | Epilogue]:
    stream_ended = False
    while True:
        try:
            event = decoder.next_event()
        except RequestEntityTooLarge:
            raise FormTooLarge(f"the form has too many parts (at most {MAX_PARTS})") from None
        if isinstance(event, NeedData):
            if stream_ended:
                raise UploadMalformed("the upload ended before it was complete")
            chunk = stream.read(NETWORK_READ_BYTES)
            stream_ended = not chunk
            try:
                decoder.receive_data(chunk or None)
            except RequestEntityTooLarge:
                raise FormTooLarge("a part of the form is too long") from None
            continue
        if isinstance(event, (Data, Field, File, Epilogue)):
            yield event
            if isinstance(event, Epilogue):
                return
