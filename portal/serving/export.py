"""The segment export: an upload's own rows, byte for byte, with the segment columns added, as .xlsx.

In an .xlsx only a cell of formula type is ever evaluated, so text that looks like a formula is written
as a string cell and kept exactly as uploaded: prefixing it with an apostrophe (the CSV defence) would
show `'+65 …` for every phone number.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from openpyxl.cell.cell import TYPE_FORMULA, TYPE_STRING

from portal.ingestion.reader import read_rows_as_is
from portal.serving.table_upload import table_rows_as_is
from portal.serving.upload_store import UploadStore

#: Columns the export adds; a re-uploaded export's old copies are replaced, not duplicated.
SEGMENT_COLUMNS = ("Segment ID", "Persona", "Confidence", "Reassigned from noise")
SHEET = "Segments"


def segments_workbook(upload_id: str, uploads: UploadStore) -> bytes:
    """The uploaded customers with segment id, persona name, confidence and reassigned columns."""
    record: dict[str, Any] = uploads.record(upload_id)
    placement = uploads.placement(upload_id)
    path, _ = uploads.original(upload_id)
    rows = table_rows_as_is(path.read_bytes()) if record.get("kind") == "table" else read_rows_as_is(path)
    names = {s["cluster_id"]: s["persona"]["name"] for s in record["segments"]}
    segment_id, persona, confidence, reassigned = SEGMENT_COLUMNS
    by_row = pd.DataFrame({"source_row": placement["source_row"], segment_id: placement["cluster_id"],
                           confidence: np.round(placement["confidence"], 3), reassigned: placement["reassigned"]})
    by_row.insert(2, persona, by_row[segment_id].map(names))
    earlier_export = [c for c in SEGMENT_COLUMNS if c in rows.columns]
    frame = rows.drop(columns=earlier_export).merge(by_row, on="source_row", how="inner").drop(columns="source_row")
    frame.columns = [str(c) for c in frame.columns]
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        frame.to_excel(writer, index=False, sheet_name=SHEET)
        _text_never_formula(writer.book[SHEET])
    return buffer.getvalue()


def _text_never_formula(sheet: Any) -> None:
    """openpyxl types any text starting with '=' as a formula; nothing we export is one."""
    for row in sheet.iter_rows():
        for cell in row:
            if cell.data_type == TYPE_FORMULA:
                cell.data_type = TYPE_STRING
