"""The directory of schools and local authorities: importing the DfE's GIAS extract and finding schools.

No Flask here: plain functions on a database session (the ``orgs`` commands live in :mod:`.cli`).
"""

from portal.directory.gias import (
    GiasImportError,
    ImportSummary,
    MissingColumns,
    SkippedRow,
    UnreadableExtract,
    import_gias,
)
from portal.directory.search import find_schools

__all__ = [
    "GiasImportError",
    "ImportSummary",
    "MissingColumns",
    "SkippedRow",
    "UnreadableExtract",
    "find_schools",
    "import_gias",
]
