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
SUMMARY_SHEET = "Summary"
FIT_SHEET = "Model fit"


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
        summary_frame(record).to_excel(writer, index=False, sheet_name=SUMMARY_SHEET)
        fit_frame(record).to_excel(writer, index=False, sheet_name=FIT_SHEET)
        for name in (SHEET, SUMMARY_SHEET, FIT_SHEET):
            _text_never_formula(writer.book[name])
    return buffer.getvalue()


def _traits(traits: list[dict[str, Any]] | None) -> str:
    return "; ".join(str(t.get("trait", "")) for t in traits or [])


def summary_frame(record: dict[str, Any]) -> pd.DataFrame:
    """One row per segment: the persona (the training base's archetype) beside this list's own profile of it."""
    rows = []
    for segment in record["segments"]:
        profile = segment.get("list_profile") or {}
        rows.append({"Segment ID": segment["cluster_id"], "Persona": segment["persona"]["name"],
                     "Customers": segment["size"], "Share of this list": segment["share"],
                     "Mean confidence": segment.get("mean_confidence"),
                     "Reassigned from noise": segment.get("reassigned"),
                     "This list's members": profile.get("summary"),
                     "Traits vs this list": _traits(profile.get("traits_vs_list")),
                     "Traits vs the training base": _traits(profile.get("traits_vs_base")),
                     "Persona (training base)": segment["persona"].get("summary")})
    return pd.DataFrame(rows)


def fit_frame(record: dict[str, Any]) -> pd.DataFrame:
    """The upload's model fit: verdict, score, each part, and the action when the list does not fit."""
    fit = record.get("model_fit") or {}
    rows: list[dict[str, Any]] = [{"Item": "Verdict", "Value": fit.get("verdict") or "not available"},
                                  {"Item": "Score", "Value": fit.get("score")}]
    if fit.get("reason"):
        rows.append({"Item": "Why not available", "Value": fit["reason"]})
    for name, part in (fit.get("parts") or {}).items():
        rows.append({"Item": name, "Value": part.get("value", part.get("list")),
                     "Part score": part.get("score")})
    action = fit.get("action")
    if action:
        rows += [{"Item": "Action", "Value": action["message"]}, {"Item": "Command", "Value": action["command"]}]
    return pd.DataFrame(rows, columns=["Item", "Value", "Part score"])


def _text_never_formula(sheet: Any) -> None:
    """openpyxl types any text starting with '=' as a formula; nothing we export is one."""
    for row in sheet.iter_rows():
        for cell in row:
            if cell.data_type == TYPE_FORMULA:
                cell.data_type = TYPE_STRING
