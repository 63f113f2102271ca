"""Order exports → one row per customer: recency, frequency, monetary value and each customer's usual values.

Marketers export orders (the same customer id on every order row, with a date and an amount), but
segments are of customers, not of rows. A table is order-level when its identifier repeats (on average
at least 1.5 rows per customer, and a fifth of the customers on several rows) and it has a date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from portal.ingestion.dates import parse_dates
from portal.ingestion.roles import Role, TableSchema, numeric_values
from schemas import header_key

MIN_ROWS_PER_CUSTOMER = 1.5
MIN_REPEAT_SHARE = 0.2
_AMOUNT_HEADERS = re.compile(r"(sales|amount|revenue|total|spend|spent|value|monetary|paid|payment|price)")
_QUANTITY_HEADERS = re.compile(r"(quantity|qty|units|count)")
_UNIT_PRICE_HEADERS = re.compile(r"(unitprice|priceeach|price)")
_ORDER_HEADERS = re.compile(r"(order|invoice|transaction|receipt|basket)")
_CUSTOMER_ID_HEADERS = re.compile(r"(customer|client|member|user|buyer|account|cust)(id|no|number|code|key)?$")
LAST_PURCHASE, FIRST_PURCHASE, ORDERS, TOTAL_SPEND = "Last purchase", "First purchase", "Orders", "Total spend"


@dataclass
class RolledUp:
    """The per-customer table and what the roll-up did, for the response and the training report."""

    frame: pd.DataFrame
    order_rows: int
    customers: int
    id_column: str
    date_column: str
    amount: str | None

    def summary(self) -> str:
        spend = f", total spend from {self.amount}" if self.amount else ""
        return (f"{self.order_rows:,} order rows rolled up into {self.customers:,} customers by {self.id_column} "
                f"(recency and first purchase from {self.date_column}, frequency as orders{spend})")

    def record(self) -> dict[str, Any]:
        """What the manifest keeps of it (uploads roll up the same way; a retrain carries it over)."""
        return {"order_rows": self.order_rows, "customers": self.customers, "id_column": self.id_column,
                "date_column": self.date_column, "summary": self.summary()}


def is_order_level(frame: pd.DataFrame, schema: TableSchema) -> bool:
    """The customer id repeats across rows and there is a date to tell orders apart."""
    ids = _customer_ids(frame, schema)
    if ids is None or not schema.of(Role.DATE):
        return False
    counts = ids.value_counts()
    return len(counts) > 0 and len(ids) / len(counts) >= MIN_ROWS_PER_CUSTOMER and \
        float((counts > 1).mean()) >= MIN_REPEAT_SHARE


def _customer_ids(frame: pd.DataFrame, schema: TableSchema) -> pd.Series | None:
    names = _id_names(schema)
    return frame[names[0]].dropna().astype(str) if names else None


def roll_up(frame: pd.DataFrame, schema: TableSchema) -> RolledUp:
    """One row per customer; dates as last and first purchase, orders counted, the amount summed, and each
    categorical column's most frequent value. Rows without a customer id or a readable date are dropped."""
    id_column = _id_names(schema)[0]
    date_column = _pick(schema.of(Role.DATE), re.compile(r"(order|invoice|purchase|transaction|date)"))
    dates = parse_dates(frame[date_column], frame[date_column].astype("string"))
    work = pd.DataFrame({"_id": frame[id_column].astype("string"), "_date": dates})
    amount_name, amount = _amount(frame, schema)
    if amount is not None:
        work["_amount"] = amount
    order_ids = [c.name for c in schema.columns if c.name != id_column and _ORDER_HEADERS.search(header_key(c.name))
                 and c.role in (Role.IDENTIFIER, Role.HIGH_CARDINALITY, Role.NUMERIC)]
    if order_ids:
        work["_order"] = frame[order_ids[0]].astype("string")
    kept_roles = (Role.CATEGORICAL, Role.ORDINAL, Role.BOOLEAN, Role.HIGH_CARDINALITY)
    usual = [c.name for c in schema.columns if c.role in kept_roles and c.name not in (id_column, *order_ids)]
    for name in usual:
        work[name] = frame[name].astype("string")
    work = work[work["_id"].notna() & work["_date"].notna()]
    grouped = work.groupby("_id", sort=True)
    out = pd.DataFrame({
        id_column: grouped.size().index,
        LAST_PURCHASE: grouped["_date"].max().to_numpy(),
        FIRST_PURCHASE: grouped["_date"].min().to_numpy(),
        ORDERS: (grouped["_order"].nunique() if "_order" in work else grouped.size()).to_numpy(),
    })
    if "_amount" in work:
        out[TOTAL_SPEND] = grouped["_amount"].sum(min_count=1).to_numpy()
    for name in usual:
        out[name] = grouped[name].agg(_most_frequent).to_numpy()
    return RolledUp(out, order_rows=len(frame), customers=len(out), id_column=id_column, date_column=date_column,
                    amount=amount_name)


def _id_names(schema: TableSchema) -> list[str]:
    """Customer id columns, best first: named like a customer id (in an order export it repeats, so it may
    have been read as a category or a number), then any identifier that is not an order id."""
    named = [c.name for c in schema.columns
             if c.role in (Role.IDENTIFIER, Role.HIGH_CARDINALITY, Role.NUMERIC, Role.CATEGORICAL)
             and _CUSTOMER_ID_HEADERS.search(header_key(c.name))]
    return named + [c.name for c in schema.of(Role.IDENTIFIER)
                    if c.name not in named and not _ORDER_HEADERS.search(header_key(c.name))]


def _pick(columns: list, preferred: re.Pattern[str]) -> str:
    named = [c.name for c in columns if preferred.search(header_key(c.name))]
    return named[0] if named else columns[0].name


def _amount(frame: pd.DataFrame, schema: TableSchema) -> tuple[str | None, pd.Series | None]:
    """The money per row: a sales/amount column, else quantity × unit price."""
    numeric = schema.of(Role.NUMERIC)
    comma = {c.name: c.decimal_comma for c in numeric}
    quantity = [c.name for c in numeric if _QUANTITY_HEADERS.search(header_key(c.name))]
    price = [c.name for c in numeric if _UNIT_PRICE_HEADERS.search(header_key(c.name))]
    money = [c.name for c in numeric if _AMOUNT_HEADERS.search(header_key(c.name)) and c.name not in price]
    if money:
        return money[0], numeric_values(frame[money[0]], comma[money[0]])
    if quantity and price:
        return (f"{quantity[0]} × {price[0]}", numeric_values(frame[quantity[0]], comma[quantity[0]])
                * numeric_values(frame[price[0]], comma[price[0]]))
    return None, None


def _most_frequent(values: pd.Series) -> object:
    counts = values.dropna().value_counts()
    return counts.index[0] if len(counts) else np.nan
