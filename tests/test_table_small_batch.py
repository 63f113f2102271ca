"""Few-row reading and encoding: every row alone gives the bits the pandas/ColumnTransformer path gives it in a
batch, whatever its cells hold (unknown categories, blanks, odd spellings, out-of-range numbers)."""

from __future__ import annotations

import io
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from portal.ingestion.dates import parse_dates, read_common_date
from portal.ingestion.roles import Role, infer_schema
from portal.segmentation.table_features import TableFeatures
from portal.segmentation.table_small_batch import SMALL_BATCH_ROWS, SmallBatchEncoder

#: Cells people type or files hold, per kind of column; each is dropped into random rows.
ODD_CELLS = {
    "number": [None, "", "   ", np.nan, "abc", "1,234", "$12.50", "45%", "(1,234.00)", "($ 12.50)", " 7 ", "1e5",
               "-0", "+3", ".5", "1e308", "-1e31", 1e308, float("inf"), 500, -2.5, True, "12345678901234567890",
               "٣", pd.Timestamp("2024-01-01")],
    "date": [None, "", "2024-02-30", "2024-03-01", "2024/03/01", "01/03/2024", "13/01/2024", "01-03-2024",
             "01.03.2024", "2024-03-01 10:30", "2024-03-01T08:00:00Z", "March 1 2024", "1 Mar 2024", "20240301",
             "45000", 45000, 45000.5, "not a date", "1500-01-01", pd.Timestamp("2023-05-06 07:08:09"),
             datetime(2022, 1, 2), date(2021, 6, 7), True],
    "yes/no": [None, "", "Yes", "yes ", "Y", "TRUE", "t", "1", "0.0", 1, 0, 1.0, -0.0, True, False, "maybe", 2],
    "ordinal": [None, "", "gold", " Silver", "GOLD", "Diamond", 2, "bronze"],
    "text": [None, "", "  ", "Atlantis", "online", " Online ", 7, 3.5, True, "Ünïcode", "Store"],
}


def _table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    joined = pd.Timestamp("2024-12-31") - pd.to_timedelta(rng.integers(0, 1500, rows), unit="D")
    return pd.DataFrame({
        "Member No": [f"M{i:05d}" for i in range(rows)],
        "Spend": np.round(rng.lognormal(3, 1.2, rows), 2),
        "Age": rng.integers(18, 80, rows),
        "Joined": joined.strftime("%d/%m/%Y"),
        "Newsletter": rng.choice(["Yes", "No"], rows),
        "Level": rng.choice(["Bronze", "Silver", "Gold"], rows),
        "Channel": rng.choice(["Online", "Store", "Phone"], rows),
        "Town": rng.choice([f"Town {i}" for i in range(40)], rows),
    })


KINDS = {"Spend": "number", "Age": "number", "Joined": "date", "Newsletter": "yes/no", "Level": "ordinal",
         "Channel": "text", "Town": "text"}


def _odd(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``frame`` as Python objects (as a JSON body gives them) with odd cells in about a third of the cells."""
    rng = np.random.default_rng(seed)
    out = frame.astype(object)
    for column, kind in KINDS.items():
        cells = ODD_CELLS[kind]
        for row in np.flatnonzero(rng.random(len(out)) < 0.35):
            out.iat[row, out.columns.get_loc(column)] = cells[rng.integers(len(cells))]
    return out


@pytest.fixture(scope="module")
def features() -> TableFeatures:
    frame = _table(400, 0)
    schema = infer_schema(frame)
    roles = {c.name: c.role for c in schema.features}
    assert roles == {"Spend": Role.NUMERIC, "Age": Role.NUMERIC, "Joined": Role.DATE, "Newsletter": Role.BOOLEAN,
                     "Level": Role.ORDINAL, "Channel": Role.CATEGORICAL, "Town": Role.HIGH_CARDINALITY}
    return TableFeatures(schema).fit(frame)


def _as_upload(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as an uploaded csv reads them (text columns, pandas' own dtypes)."""
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)))


@pytest.mark.parametrize("source", ["objects", "csv", "typed"])
def test_each_row_alone_encodes_to_the_bits_of_the_batch(features, source):
    odd = _odd(_table(300, 1), 2)
    rows = {"objects": odd, "csv": _as_upload(odd), "typed": _table(300, 3)}[source]
    assert len(rows) > SMALL_BATCH_ROWS
    typed, batch_bad = features.columns_.read(rows)
    batch = features.encode(typed)
    few = SmallBatchEncoder(features)
    for row in range(len(rows)):
        X, bad = few.read(rows.iloc[[row]])
        assert X.dtype == np.float32 and X[0].tobytes() == batch[row].tobytes(), rows.iloc[row].to_dict()
        assert bad[0].tolist() == batch_bad.iloc[row].tolist(), rows.iloc[row].to_dict()
    X, bad = few.read(rows.iloc[:SMALL_BATCH_ROWS])
    assert X.tobytes() == batch[:SMALL_BATCH_ROWS].tobytes()
    assert bad.tolist() == batch_bad.iloc[:SMALL_BATCH_ROWS].to_numpy().tolist()


def test_unreadable_cells_are_flagged_as_the_batch_flags_them(features):
    rows = pd.DataFrame({"Spend": ["abc", "12", None], "Age": [1e308, 30, 40], "Joined": ["01/02/2024", "soon", ""],
                         "Newsletter": ["Yes", "maybe", None], "Level": ["Gold", "Gold", "Diamond"],
                         "Channel": ["Online", None, "Atlantis"], "Town": ["Town 1", "Nowhere", None]}, dtype=object)
    _, bad = SmallBatchEncoder(features).read(rows)
    names = [c.name for c in features.schema.features]
    flagged = [[names[j] for j in np.flatnonzero(r)] for r in bad]
    assert flagged == [["Spend", "Age"], ["Joined", "Newsletter"], ["Level"]]


SPELLINGS = ["2024-03-01", "2024/03/01", "01/03/2024", "03/01/2024", "13/01/2024", "01/13/2024", "01-03-2024",
             "01.03.2024", "2024-03-01 10:30", "2024-03-01T08:00:00+08:00", "2024-02-30", "31/04/2024", "0001-01-01",
             "1 Mar 2024", "20240301", "45000", "24-03-01", "2024-3-1", "١٢/٠٣/٢٠٢٤"]


@pytest.mark.parametrize("month_first", [False, True])
def test_common_date_spellings_read_as_parse_dates_reads_them(month_first):
    for text in SPELLINGS:
        expected = parse_dates(pd.Series([text], dtype=object), pd.Series([text], dtype="string"), month_first)[0]
        found = read_common_date(text, month_first)
        if found is not None:
            assert pd.Timestamp(found) == expected, text
    written_day = datetime(2024, 1, 3) if month_first else datetime(2024, 3, 1)
    assert read_common_date("01/03/2024", month_first) == written_day
    assert read_common_date("1 Mar 2024", month_first) is None  # not a common spelling: pandas reads it


def test_a_decimal_comma_column_reads_alike_alone_and_in_a_batch():
    frame = _table(400, 4)
    frame["Spend"] = [f"{v:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".") for v in frame["Spend"]]
    schema = infer_schema(frame)
    assert next(c for c in schema.features if c.name == "Spend").decimal_comma
    european = TableFeatures(schema).fit(frame)
    rows = frame.head(30).astype(object)
    typed, _ = european.columns_.read(rows)
    assert np.allclose(typed["Spend"].astype(float), _table(400, 4)["Spend"].head(30))
    batch = european.encode(typed)
    few = SmallBatchEncoder(european)
    for row in range(len(rows)):
        assert few.read(rows.iloc[[row]])[0][0].tobytes() == batch[row].tobytes()
