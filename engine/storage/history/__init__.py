"""Results history: list, filter and compare stored runs, and the documents they travel in.

``queries`` lists, filters and loads runs (the quoted T4 study among them); ``compare``
matches two runs point by point as a speed-up next to the settings that differ. Documents
from other machines are read and checked by :mod:`engine.storage.documents`; the ``history`` and
``import`` commands live in :mod:`engine.cli`. The names below are the package's
public face, so callers write ``history.load_run`` without knowing the split.
"""

from engine.storage.documents import (
    MAX_IMPORT_BYTES,
    check_size,
    document_key,
    import_document,
    import_file,
    parse_document,
    read_document_file,
    validate_document,
)
from engine.storage.history.compare import (
    EnvDiff,
    SpeedupRow,
    best_points,
    compare_runs,
    diff_frame,
    env_diff,
    speedup_frame,
    speedups,
    unmatched_points,
)
from engine.storage.history.queries import (
    QUOTED_SOURCE,
    REFERENCE_ID,
    RunInfo,
    RunRecord,
    filter_runs,
    list_runs,
    load_run,
    parse_run_id,
    parse_since,
    reference_record,
    rows_csv,
    runs_frame,
)

__all__ = [
    "MAX_IMPORT_BYTES",
    "QUOTED_SOURCE",
    "REFERENCE_ID",
    "EnvDiff",
    "RunInfo",
    "RunRecord",
    "SpeedupRow",
    "best_points",
    "check_size",
    "compare_runs",
    "diff_frame",
    "document_key",
    "env_diff",
    "filter_runs",
    "import_document",
    "import_file",
    "list_runs",
    "load_run",
    "parse_document",
    "parse_run_id",
    "parse_since",
    "read_document_file",
    "reference_record",
    "rows_csv",
    "runs_frame",
    "speedup_frame",
    "speedups",
    "unmatched_points",
    "validate_document",
]
