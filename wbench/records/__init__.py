"""The records stage: one JSON line per cell (:mod:`wbench.records.store`), read back into
records with no cell counted twice (:mod:`wbench.records.read`).

The names of :mod:`wbench.records.store` are re-exported here.
"""

from __future__ import annotations

from wbench.records.store import (
    IDENTITY_FIELDS,
    RECORDS_FILENAME,
    SCHEMA_VERSION,
    STATUSES,
    TORN_SUFFIX,
    Outcome,
    Record,
    RecordFileError,
    RecordStore,
    Status,
    canonical_json,
    cell_key,
    clean_floats,
    parse_record_line,
)

__all__ = [
    "IDENTITY_FIELDS",
    "Outcome",
    "RECORDS_FILENAME",
    "Record",
    "RecordFileError",
    "RecordStore",
    "SCHEMA_VERSION",
    "STATUSES",
    "Status",
    "TORN_SUFFIX",
    "canonical_json",
    "cell_key",
    "clean_floats",
    "parse_record_line",
]
