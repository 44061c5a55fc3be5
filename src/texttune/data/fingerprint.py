"""A content hash of evaluation rows: two runs scored on the same rows, in the same order, have the same hash.

``texttune runs compare A B`` pairs the two runs' per-row predictions only when their hashes match
(metrics.json ``evaluation_data``); anything else about the files (name, format, column names once
mapped to roles) does not change it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def rows_hash(rows: Any) -> str:
    """``sha256:<hex>`` of the rows (a datasets.Dataset or a list of dicts), in order, each as sorted-key JSON."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(dict(row), sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()
