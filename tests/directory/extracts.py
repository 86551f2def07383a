"""Writing GIAS extracts for tests: the shipped sample, or variations of it, in a chosen encoding."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import portal.directory

SAMPLE = Path(portal.directory.__file__).parent / "sample_gias.csv"


def sample_header_and_rows() -> tuple[list[str], list[dict[str, str]]]:
    """The shipped sample's header and rows (it is saved in cp1252, as GIAS publishes)."""
    with SAMPLE.open(encoding="cp1252", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        assert reader.fieldnames is not None
        return list(reader.fieldnames), rows


def write_extract(
    path: Path, header: list[str], rows: list[dict[str, str]], *, encoding: str = "cp1252"
) -> Path:
    """Write ``rows`` under ``header`` as a CSV at ``path`` (CRLF line ends, like the DfE's files)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=header, lineterminator="\r\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(text.getvalue().encode(encoding))
    return path


def sample_variant(
    path: Path, changes_by_urn: dict[str, dict[str, str]] | None = None, *, encoding: str = "cp1252"
) -> Path:
    """The sample with some rows changed, e.g. ``sample_variant(p, {"990001": {"EstablishmentName": "X"}})``."""
    header, rows = sample_header_and_rows()
    for row in rows:
        row.update((changes_by_urn or {}).get(row["URN"], {}))
    return write_extract(path, header, rows, encoding=encoding)
