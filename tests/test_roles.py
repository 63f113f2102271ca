"""Learning a customer table's schema: each column's role, from its header and its values, with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from portal.ingestion.roles import Role, infer_schema
from portal.ingestion.rollup import is_order_level, roll_up
from portal.ingestion.tables import read_table

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
real_file = pytest.mark.skipif(not DATASETS.is_dir(), reason="shared/datasets is laid beside the repository")


def roles_of(frame: pd.DataFrame, **overrides) -> dict[str, Role]:
    return {c.name: c.role for c in infer_schema(frame, **overrides).columns}


@real_file
def test_mall_customer_list():
    table = read_table(DATASETS / "mall_customers.csv")
    assert roles_of(table.frame) == {"CustomerID": Role.IDENTIFIER, "Genre": Role.CATEGORICAL, "Age": Role.NUMERIC,
                                     "Annual_Income(k$)": Role.NUMERIC, "Spending_Score(1-100)": Role.NUMERIC}


@real_file
def test_tab_separated_marketing_table_with_day_first_dates():
    table = read_table(DATASETS / "marketing_campaign.csv")
    assert table.frame.shape == (2240, 29)
    roles = roles_of(table.frame)
    assert roles["ID"] == Role.IDENTIFIER and roles["Dt_Customer"] == Role.DATE
    assert roles["Year_Birth"] == Role.NUMERIC  # a column of years is a number, not a date
    assert roles["Education"] == Role.ORDINAL and roles["Marital_Status"] == Role.CATEGORICAL
    assert roles["Z_CostContact"] == roles["Z_Revenue"] == Role.EXCLUDED
    assert roles["Income"] == roles["MntWines"] == roles["NumWebPurchases"] == Role.NUMERIC
    assert roles["Response"] == roles["AcceptedCmp1"] == Role.BOOLEAN
    education = next(c for c in infer_schema(table.frame).columns if c.name == "Education")
    assert education.values == ["Basic", "2n Cycle", "Graduation", "Master", "PhD"]


@real_file
def test_telco_workbook_with_addresses_and_coordinates():
    table = read_table(DATASETS / "telco_customer_churn.xlsx")
    roles = roles_of(table.frame)
    assert {roles[c] for c in ("Zip Code", "Lat Long", "Latitude", "Longitude")} == {Role.PERSONAL}
    assert {roles[c] for c in ("Count", "Country", "State")} == {Role.EXCLUDED}  # constant
    assert roles["City"] == Role.HIGH_CARDINALITY and roles["Contract"] == Role.ORDINAL
    assert roles["Phone Service"] == Role.BOOLEAN  # a yes/no about a service is not a phone number
    assert roles["Total Charges"] == roles["Tenure Months"] == Role.NUMERIC
    assert roles["CustomerID"] == Role.IDENTIFIER


def test_personal_data_is_found_by_value_whatever_the_header():
    rng = np.random.default_rng(1)
    n = 300
    frame = pd.DataFrame({
        "Contact": [f"user{i}@mail.example.com" for i in range(n)],
        "Reach": [f"+65 9{rng.integers(100, 999)} {rng.integers(1000, 9999)}" for _ in range(n)],
        "Info": [f"called on a Tuesday about order {i} and asked for a refund" for i in range(n)],
        "Spend": rng.gamma(2, 50, n).round(2),
    })
    roles = roles_of(frame)
    assert roles == {"Contact": Role.PERSONAL, "Reach": Role.PERSONAL, "Info": Role.PERSONAL, "Spend": Role.NUMERIC}


@pytest.mark.parametrize(("values", "order"), [
    (["Gold", "Bronze", "Diamond", "Silver", "Platinum"], ["Bronze", "Silver", "Gold", "Platinum", "Diamond"]),
    (["high", "low", "medium"], ["low", "medium", "high"]),
    (["Two year", "Month-to-month", "One year"], ["Month-to-month", "One year", "Two year"]),
])
def test_values_on_a_known_scale_are_ordinal_in_their_order(values, order):
    frame = pd.DataFrame({"Level": values * 40})
    column = infer_schema(frame).columns[0]
    assert column.role == Role.ORDINAL and column.values == order


def test_an_unknown_order_stays_categorical_and_many_categories_are_described_by_members():
    frame = pd.DataFrame({"Channel": ["Web", "Store", "App"] * 100,
                          "City": [f"Town {i % 60}" for i in range(300)]})
    assert roles_of(frame) == {"Channel": Role.CATEGORICAL, "City": Role.HIGH_CARDINALITY}


def test_mostly_empty_and_near_unique_text_are_left_out_with_a_reason():
    frame = pd.DataFrame({"Promo": ["A"] * 20 + [None] * 280, "Slogan": [f"word{i} x" for i in range(300)],
                          "Age": np.arange(300) % 70 + 18})
    schema = infer_schema(frame)
    reasons = {c.name: (c.role, c.reason) for c in schema.columns}
    assert reasons["Promo"][0] == Role.EXCLUDED and "mostly empty" in reasons["Promo"][1]
    assert reasons["Slogan"][0] == Role.EXCLUDED and "near-unique" in reasons["Slogan"][1]
    assert [c.name for c in schema.features] == ["Age"]


def test_overrides_win_and_say_so():
    frame = pd.DataFrame({"Store": ["North", "South"] * 50, "Age": np.arange(100) % 50 + 20})
    schema = infer_schema(frame, roles={"Age": "categorical"}, exclude=["Store"])
    by_name = {c.name: c for c in schema.columns}
    assert by_name["Store"].role == Role.EXCLUDED and by_name["Store"].overridden
    assert by_name["Age"].role == Role.CATEGORICAL and "inferred: numeric" in by_name["Age"].reason
    with pytest.raises(ValueError, match="no column 'Region'"):
        infer_schema(frame, exclude=["Region"])
    with pytest.raises(ValueError, match="not a role"):
        infer_schema(frame, roles={"Age": "colour"})


def _orders(customers: int = 300, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(customers):
        for o in range(int(rng.integers(1, 7))):
            rows.append({"Order ID": f"SO-{c:04d}-{o}", "Customer ID": f"CU-{c:04d}",
                         "Order Date": pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 600))),
                         "Sales": round(float(rng.gamma(2, 30)), 2),
                         "Channel": ["Web", "Store"][int(rng.integers(0, 2))] if c % 3 else "App"})
    return pd.DataFrame(rows)


def test_an_order_export_is_recognised_and_rolled_up_per_customer():
    orders = _orders()
    schema = infer_schema(orders)
    assert is_order_level(orders, schema)
    rolled = roll_up(orders, schema)
    expected = orders.groupby("Customer ID").agg(orders=("Order ID", "nunique"), spend=("Sales", "sum"),
                                                 last=("Order Date", "max"), first=("Order Date", "min"))
    frame = rolled.frame.set_index("Customer ID").loc[expected.index]
    assert rolled.customers == 300 and rolled.order_rows == len(orders)
    assert frame["Orders"].tolist() == expected["orders"].tolist()
    assert np.allclose(frame["Total spend"], expected["spend"])
    assert (frame["Last purchase"] == expected["last"]).all() and (frame["First purchase"] == expected["first"]).all()
    assert set(frame.loc[[f"CU-{c:04d}" for c in range(0, 300, 3)], "Channel"]) == {"App"}
    assert "rolled up into 300 customers" in rolled.summary()


def test_a_customer_table_is_not_rolled_up():
    customers = pd.DataFrame({"Customer ID": [f"C{i}" for i in range(200)],
                              "Joined": pd.date_range("2020-01-01", periods=200, freq="D"),
                              "Spend": np.arange(200.0)})
    assert not is_order_level(customers, infer_schema(customers))


def test_id_headers_ending_in_no_or_ref_are_identifiers_and_a_phone_number_is_personal():
    """Unique six-digit integers under "Client No" were read as a number and trained on; "Phone Number" (digits
    with a leading zero) was taken for the customer id by its "Number"."""
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({
        "Client No": rng.choice(np.arange(100_000, 999_999), n, replace=False),
        "AccountRef": [f"AC{v}" for v in rng.choice(np.arange(100_000, 999_999), n, replace=False)],
        "Phone Number": [f"07{v:09d}" for v in rng.choice(10**9, n, replace=False)],
        "Balance": rng.gamma(2, 900, n).round(2),
    })
    schema = infer_schema(frame)
    roles = {c.name: c.role for c in schema.columns}
    assert roles == {"Client No": Role.IDENTIFIER, "AccountRef": Role.IDENTIFIER, "Phone Number": Role.PERSONAL,
                     "Balance": Role.NUMERIC}
    assert schema.identifier == "Client No"


@pytest.mark.parametrize("dtype", [object, "string"])
def test_numbers_read_alike_whatever_the_column_holds(dtype):
    """Plain numbers take the direct parse; a column with any spreadsheet noise, a word or a yes/no cell is read
    cell by cell with the noise removed (a TRUE cell is not the number 1)."""
    from portal.ingestion.roles import numeric_values

    plain = pd.Series([" 12 ", "1e3", "-4.5", None], dtype=dtype)
    assert numeric_values(plain).tolist()[:3] == [12.0, 1000.0, -4.5] and np.isnan(numeric_values(plain).iloc[3])
    noisy = pd.Series(["$1,234", "45 %", "twelve", None], dtype=dtype)
    assert numeric_values(noisy).iloc[:2].tolist() == [1234.0, 45.0] and numeric_values(noisy).iloc[2:].isna().all()
    if dtype is object:
        assert numeric_values(pd.Series([True, "3"], dtype=object)).iloc[0] != 1.0


@pytest.mark.parametrize("values, comma", [
    (["4.879,88", "256,52", "12,5", "1.234"], True),
    (["1.234.567", "2.345", "980"], True),
    (["1,234", "5,678", "910"], False),  # thousands or decimals: nothing tells, so the dot stays the decimal mark
    (["1,234.50", "12.5", "7"], False),
    ([*(f"{i},5 €" for i in range(30)), "4.25"], True),  # one stray English number does not flip the column
    (["3,5", "4.25", "1.5", "2,75"], False),  # half and half: read as before
])
def test_decimal_commas_are_told_by_the_values_that_can_only_mean_them(values, comma):
    from portal.ingestion.roles import writes_decimal_comma

    assert writes_decimal_comma(pd.Series(values)) is comma


def test_a_european_amount_column_is_numeric_with_decimal_commas_and_reads_as_written():
    from portal.ingestion.roles import numeric_values

    rng = np.random.default_rng(3)
    amounts = rng.lognormal(6, 1.5, 300).round(2)
    frame = pd.DataFrame({
        "Umsatz (EUR)": [f"{a:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".") for a in amounts],
        "Spend": [f"{a:,.2f}" for a in amounts],  # the same amounts written the English way
        "Kanal": rng.choice(["Online", "Filiale"], 300)})
    columns = {c.name: c for c in infer_schema(frame).columns}
    assert columns["Umsatz (EUR)"].role == columns["Spend"].role == Role.NUMERIC
    assert columns["Umsatz (EUR)"].decimal_comma and not columns["Spend"].decimal_comma
    assert "decimal commas" in columns["Umsatz (EUR)"].reason
    european = numeric_values(frame["Umsatz (EUR)"], decimal_comma=True)
    assert np.allclose(european, amounts) and np.allclose(numeric_values(frame["Spend"]), amounts)
    workbook = pd.Series([1234.5, "1.234,50", None], dtype=object)  # a workbook's number cells are numbers
    assert numeric_values(workbook, decimal_comma=True).iloc[:2].tolist() == [1234.5, 1234.5]


def test_a_release_pickled_before_a_column_setting_existed_loads_with_its_default():
    import pickle

    from portal.ingestion.roles import ColumnRole

    column = ColumnRole(name="Spend", role=Role.NUMERIC, reason="numbers")
    state = column.__getstate__()
    del state["__dict__"]["decimal_comma"]  # as a release saved before the setting existed holds it
    old = ColumnRole.__new__(ColumnRole)
    old.__setstate__(state)
    assert old.decimal_comma is False and pickle.loads(pickle.dumps(old)) == column


def test_personal_headers_in_other_languages_and_compounds_are_personal():
    rng = np.random.default_rng(8)
    people = [f"Person {i}" for i in range(300)]
    frame = pd.DataFrame({header: rng.choice(people, 600) for header in
                          ("Vorname", "Kundenname", "E-Mail-Adresse", "Téléphone", "Prénom", "Straße", "Bemerkungen",
                           "Apellidos", "Indirizzo", "Telefonnummer")})
    frame["Smartphone Model"] = rng.choice([f"Model {i}" for i in range(8)], 600)
    frame["Spend"] = rng.normal(100, 20, 600).round(2)
    roles = roles_of(frame)
    assert {name for name, role in roles.items() if role == Role.PERSONAL} == set(frame.columns) - {
        "Smartphone Model", "Spend"}
    assert roles["Smartphone Model"] == Role.CATEGORICAL and roles["Spend"] == Role.NUMERIC


def test_accounting_negatives_are_negative_numbers():
    from portal.ingestion.roles import numeric_values

    english = pd.Series(["(1,234.00)", "($ 12.50)", " (3) ", "12", "(n/a)", None], dtype=object)
    assert numeric_values(english).iloc[:4].tolist() == [-1234.0, -12.5, -3.0, 12.0]
    assert numeric_values(english).iloc[4:].isna().all()
    european = pd.Series(["(1.234,00)", "12,5"], dtype=object)
    assert numeric_values(european, decimal_comma=True).tolist() == [-1234.0, 12.5]
    balances = pd.DataFrame({"Balance": [f"({-v:,.2f})" if v < 0 else f"{v:,.2f}" for v in
                                         np.random.default_rng(2).normal(0, 500, 200)]})
    assert roles_of(balances)["Balance"] == Role.NUMERIC
