"""Uploads on disk: the original file under a server-made name, the placement of its rows, and the
PII-free snapshot of accepted rows that retraining learns from."""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from portal.errors import NotFound
from portal.ingestion.roles import TableSchema
from retraining.snapshots import hash_customer_ids, write_loyalty_snapshot, write_table_snapshot

log = logging.getLogger(__name__)
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
RECORD = "record.json"
PLACEMENT = "placement.npz"


def new_upload_id() -> str:
    return uuid.uuid4().hex


def _atomic_write(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}")
    temp.write_bytes(data)
    os.replace(temp, path)


class UploadStore:
    """One folder per upload in ``UPLOAD_DIR``; nothing is ever overwritten."""

    def __init__(self, upload_dir: Path, base_data_dir: Path, salt: str) -> None:
        self.upload_dir = Path(upload_dir)
        self.base_data_dir = Path(base_data_dir)
        self._salt = salt

    def folder(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id or ""):
            raise NotFound("Unknown upload_id; it is the 32-character id returned by POST /upload-excel.")
        folder = self.upload_dir / upload_id
        if not (folder / RECORD).is_file():
            raise NotFound(f"No upload with id {upload_id}; uploads are kept in UPLOAD_DIR on this server.")
        return folder

    def save(self, upload_id: str, original: bytes, file_format: str, record: dict[str, Any],
             source_rows: np.ndarray, cluster_ids: np.ndarray, confidence: np.ndarray,
             reassigned: np.ndarray) -> Path:
        """Keep the original bytes, the per-row placement and the response record."""
        folder = self.upload_dir / upload_id
        folder.mkdir(parents=True, exist_ok=False)
        (folder / f"original.{file_format}").write_bytes(original)
        np.savez_compressed(folder / PLACEMENT, source_row=source_rows, cluster_id=cluster_ids,
                            confidence=confidence, reassigned=reassigned)
        _atomic_write(folder / RECORD, json.dumps(record, default=str).encode())
        return folder

    def record(self, upload_id: str) -> dict[str, Any]:
        return json.loads((self.folder(upload_id) / RECORD).read_text())

    def placement(self, upload_id: str) -> dict[str, np.ndarray]:
        with np.load(self.folder(upload_id) / PLACEMENT) as data:
            return {k: data[k] for k in data.files}

    def original(self, upload_id: str) -> tuple[Path, str]:
        folder = self.folder(upload_id)
        path = next(folder.glob("original.*"))
        return path, path.suffix.lstrip(".")

    def write_snapshot(self, upload_id: str, customers: pd.DataFrame) -> Path:
        """Loyalty feature columns plus a salted hash of the customer id, for the next retraining."""
        return write_loyalty_snapshot(self.base_data_dir, f"upload-{upload_id}", customers, self._salt)

    def write_table_snapshot(self, upload_id: str, customers: pd.DataFrame, schema: TableSchema,
                             month_first: Mapping[str, bool | None] | None = None) -> Path:
        """The learned schema's feature columns plus the hashed id, in that schema's lineage folder."""
        return write_table_snapshot(self.base_data_dir, f"upload-{upload_id}", customers, schema, self._salt,
                                    month_first)


__all__ = ["UploadStore", "hash_customer_ids", "new_upload_id"]
