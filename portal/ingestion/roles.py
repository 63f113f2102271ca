"""The learned table schema: what each column of a customer table is, decided from its header and values.

A company trains the pipeline on its own customer database, whatever its columns, so nothing here
knows a column by name alone: a header only decides between readings the values allow (an
email-shaped column called "Contact" is still personal data; a near-unique column is an identifier
whatever it is called). Every decision carries its reason, for the training report and ``GET /model``,
and any of it can be overridden (``--role COLUMN=ROLE``, ``--exclude COLUMN``).
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from portal.ingestion.dates import parse_dates
from schemas import header_key


class Role(StrEnum):
    IDENTIFIER = "identifier"
    PERSONAL = "personal"
    DATE = "date"
    NUMERIC = "numeric"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"
    ORDINAL = "ordinal"
    HIGH_CARDINALITY = "high_cardinality"
    EXCLUDED = "excluded"


#: Roles whose values become features.
FEATURE_ROLES = frozenset({Role.DATE, Role.NUMERIC, Role.BOOLEAN, Role.CATEGORICAL, Role.ORDINAL,
                           Role.HIGH_CARDINALITY})

#: Scales whose order is known; a column whose values all sit on one of them is ordinal (lowest first).
KNOWN_ORDERS: tuple[tuple[str, ...], ...] = (
    ("bronze", "silver", "gold", "platinum", "diamond"),
    ("basic", "silver", "gold", "platinum"),
    ("classic", "silver", "gold", "platinum", "black"),
    ("standard", "premium", "vip"),
    ("basic", "standard", "premium"),
    ("basic", "plus", "premium"),
    ("very low", "low", "medium", "high", "very high"),
    ("low", "mid", "high"),
    ("small", "medium", "large"),
    ("xs", "s", "m", "l", "xl", "xxl"),
    ("never", "rarely", "sometimes", "often", "always"),
    ("basic", "2n cycle", "graduation", "master", "phd"),
    ("primary", "secondary", "high school", "diploma", "bachelor", "master", "phd"),
    ("none", "primary", "secondary", "tertiary"),
    ("unknown", "primary", "secondary", "tertiary"),
    ("month-to-month", "one year", "two year"),
    ("new", "regular", "loyal"),
)
_TRUE = {"yes", "y", "true", "t", "1", "1.0"}
_FALSE = {"no", "n", "false", "f", "0", "0.0"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
_PHONE = re.compile(r"^\+?[\d\s().-]{8,20}$")
_COORDINATE_PAIR = re.compile(r"^\s*-?\d{1,3}\.\d+\s*,\s*-?\d{1,3}\.\d+\s*$")
#: Header words that mark personal data (checked on the normalised header).
_PERSONAL_WORDS = frozenset({
    "name", "firstname", "lastname", "surname", "fullname", "givenname", "email", "mail", "phone", "mobile",
    "telephone", "tel", "handphone", "address", "street", "addr", "postcode", "postal", "zip", "zipcode",
    "latitude", "longitude", "lat", "lon", "lng", "latlong", "coordinates", "note", "notes", "remark", "remarks",
    "comment", "comments", "reason", "feedback", "description", "nric", "passport", "ssn",
    # the same in the languages customer lists most often arrive in (German, French, Spanish, Portuguese,
    # Italian, Dutch), accents folded
    "vorname", "nachname", "telefon", "handy", "adresse", "strasse", "plz", "postleitzahl", "bemerkung",
    "bemerkungen", "kommentar", "notiz", "notizen", "anmerkung", "anmerkungen", "nom", "prenom", "courriel",
    "portable", "rue", "remarque", "remarques", "commentaire", "commentaires", "nombre", "apellido",
    "apellidos", "correo", "telefono", "movil", "celular", "direccion", "calle", "observaciones", "comentario",
    "comentarios", "notas", "nota", "sobrenome", "endereco", "morada", "cognome", "indirizzo", "naam",
    "voornaam", "achternaam", "telefoon", "adres", "straat", "opmerking", "opmerkingen"})
#: Parts of compound headers that mark personal data ("Kundenname", "E-Mail-Adresse", "Telefonnummer").
_PERSONAL_PARTS = ("name", "mail", "telefon", "adress", "strasse", "bemerk", "kommentar", "notiz",
                   "anmerk", "opmerk")
_ID_HEADERS = re.compile(r"(^id$|id$|^id|number$|no$|nr$|num$|ref$|reference$|code$|uuid|key$)")
_DATE_HEADERS = re.compile(r"(date|^dt|time|since|joined|signup|registered|created|lastpurchase|firstpurchase|"
                           r"lastorder|firstorder)")
_PLAIN_NUMBER = r"-?\d+(?:\.\d+)?"
_DATE_LIKE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")
#: Excel serial numbers of plausible dates (1954-10-03 to 2119-01-07); other numbers are never dates.
_SERIAL_RANGE = (20_000, 80_000)
MOSTLY_EMPTY = 0.5
NEAR_UNIQUE = 0.9
LOW_CARDINALITY = 20
SAMPLE_ROWS = 20_000


class ColumnRole(BaseModel):
    """One column of the training table and how the pipeline reads it."""

    name: str
    role: Role
    reason: str
    #: ordinal: the values from lowest to highest; categorical: the values seen (most frequent first)
    values: list[str] = Field(default_factory=list)
    overridden: bool = False
    #: numeric: the column writes decimals with a comma ("1.234,56", "3,5"), as European exports do
    decimal_comma: bool = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A column pickled in a release saved before a field existed loads with that field's default."""
        values = state.setdefault("__dict__", {})
        for name, spec in type(self).model_fields.items():
            if name not in values and not spec.is_required():
                values[name] = spec.get_default(call_default_factory=True)
        super().__setstate__(state)


class TableSchema(BaseModel):
    """Every column's role, in the file's order; saved in the release manifest."""

    columns: list[ColumnRole]

    def of(self, role: Role) -> list[ColumnRole]:
        return [c for c in self.columns if c.role == role]

    @property
    def features(self) -> list[ColumnRole]:
        return [c for c in self.columns if c.role in FEATURE_ROLES]

    @property
    def identifier(self) -> str | None:
        """The customer id column (the first identifier), used to de-duplicate and to roll up orders."""
        ids = self.of(Role.IDENTIFIER)
        return ids[0].name if ids else None


def parse_role_override(text: str) -> tuple[str, str]:
    """'COLUMN=ROLE' → (column, role), for ``--role`` and the admin API; the column name may contain '='.

    Raises ValueError saying how to write it, or which roles exist."""
    column, sep, role = str(text).rpartition("=")
    if not sep or not column.strip() or not role.strip():
        raise ValueError(f"{text!r}: write it as COLUMN=ROLE, e.g. 'Zip Code=excluded'")
    role = role.strip().lower()
    if role not in {r.value for r in Role}:
        raise ValueError(f"{text!r}: {role!r} is not a role; use one of {', '.join(r.value for r in Role)}")
    return column.strip(), role


def infer_schema(frame: pd.DataFrame, roles: dict[str, str] | None = None,
                 exclude: list[str] | tuple[str, ...] = ()) -> TableSchema:
    """Each column's role from its header and values; ``roles`` and ``exclude`` override any of it.

    Raises ValueError naming the column when an override names a column the table lacks or a role
    that does not exist.
    """
    roles = dict(roles or {})
    unknown = [c for c in [*roles, *exclude] if c not in frame.columns]
    if unknown:
        raise ValueError(f"no column {unknown[0]!r} in this table; its columns are "
                         f"{', '.join(map(str, frame.columns))}")
    sample = frame.sample(SAMPLE_ROWS, random_state=0) if len(frame) > SAMPLE_ROWS else frame
    columns = []
    for name in frame.columns:
        if name in exclude:
            columns.append(ColumnRole(name=str(name), role=Role.EXCLUDED, reason="excluded on request",
                                      overridden=True))
            continue
        inferred = _infer_column(str(name), sample[name])
        if name in roles:
            try:
                role = Role(roles[name])
            except ValueError:
                raise ValueError(f"{roles[name]!r} is not a role; use one of {', '.join(r.value for r in Role)}") \
                    from None
            inferred = _as_role(inferred, role, sample[name])
        columns.append(inferred)
    return TableSchema(columns=columns)


def _filled_text(values: pd.Series) -> pd.Series:
    """The column's filled cells as stripped text."""
    text = values.dropna().astype(str).str.strip()
    return text[text != ""]


def _infer_column(name: str, values: pd.Series) -> ColumnRole:
    header = header_key(name)
    text = _filled_text(values)
    filled = len(text) / max(len(values), 1)
    distinct = text.nunique()

    def role(r: Role, reason: str, kept: list[str] | None = None) -> ColumnRole:
        return ColumnRole(name=name, role=r, reason=reason, values=kept or [])

    if filled < MOSTLY_EMPTY:
        return role(Role.EXCLUDED, f"mostly empty ({filled:.0%} of rows filled)")
    if distinct <= 1:
        return role(Role.EXCLUDED, "constant (one value in every row): says nothing about segments")
    if pd.api.types.is_datetime64_any_dtype(values):
        return role(Role.DATE, "dates (turned into days before the training reference date)")
    personal = _personal_by_value(text)
    if personal:
        return role(Role.PERSONAL, personal)
    unique_share = distinct / len(text)
    decimal_comma = writes_decimal_comma(text)
    numbers = numeric_values(text, decimal_comma)
    numeric_share = float(numbers.notna().mean())
    if distinct > 5 and _personal_header(name):  # before ids: a near-unique "Phone Number" is a phone number
        return role(Role.PERSONAL, "personal data by its name")
    id_like = bool(_ID_HEADERS.search(header))
    if unique_share >= NEAR_UNIQUE and (id_like or (numeric_share < 0.5 and _looks_like_codes(text))):
        return role(Role.IDENTIFIER, f"near-unique ({unique_share:.0%} distinct values)"
                    + (" with an id-like name" if id_like else ", shaped like codes"))
    lowered = set(text.str.lower().unique())
    if len(lowered) == 2 and lowered <= _TRUE | _FALSE and lowered & _TRUE and lowered & _FALSE:
        return role(Role.BOOLEAN, "two values meaning yes and no")
    if _looks_like_dates(header, values.loc[text.index], text, numbers, numeric_share):
        return role(Role.DATE, "dates (turned into days before the training reference date)")
    if numeric_share > 0.95:
        clean = numbers.dropna()
        is_year = bool(clean.between(1900, 2100).all() and (clean % 1 == 0).all())
        reason = "numbers" + (" (years, kept as numbers)" if is_year else "") + \
            (" with decimal commas" if decimal_comma else "")
        return ColumnRole(name=name, role=Role.NUMERIC, reason=reason, decimal_comma=decimal_comma)
    order = _known_order(lowered)
    if order is not None:
        spelled = {v.lower(): v for v in text.unique()}
        ordered = [spelled[v] for v in order if v in lowered]
        return role(Role.ORDINAL, f"values on a known scale: {' < '.join(ordered)}", ordered)
    counts = text.value_counts()
    if distinct <= LOW_CARDINALITY:
        return role(Role.CATEGORICAL, f"{distinct} categories", [str(v) for v in counts.index])
    if unique_share >= NEAR_UNIQUE:
        return role(Role.EXCLUDED, f"near-unique text ({unique_share:.0%} distinct): no segment shares a value")
    return role(Role.HIGH_CARDINALITY, f"{distinct} categories (each described by its members)",
                [str(v) for v in counts.index])


def _personal_by_value(text: pd.Series) -> str | None:
    """Emails, coordinates, phone numbers or free text, whatever the column is called."""
    sample = text.head(2000)
    if sample.str.match(_EMAIL).mean() > 0.5:
        return "email addresses (by value)"
    if sample.str.match(_COORDINATE_PAIR).mean() > 0.5:
        return "coordinates (by value)"
    digits = sample.str.count(r"\d")
    phone = (sample.str.fullmatch(_PHONE.pattern) & digits.between(8, 15) & ~sample.str.fullmatch(_PLAIN_NUMBER)
             & ~sample.str.match(_DATE_LIKE))
    if phone.mean() > 0.5:
        return "phone numbers (by value)"
    if sample.str.split().str.len().mean() >= 5 and sample.nunique() / max(len(sample), 1) > 0.5:
        return "free text (by value): notes are never features"
    return None


def _personal_header(name: str) -> bool:
    """A header naming personal data (names, contact details, addresses, coordinates, notes), in English or
    another common language, as a word or as part of a compound ("Kundenname")."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", str(name).casefold()) if not unicodedata.combining(c))
    words = set(re.findall(r"[a-z]+", folded))
    key = header_key(folded)
    return bool(words & _PERSONAL_WORDS) or key in _PERSONAL_WORDS or any(part in key for part in _PERSONAL_PARTS)


def _looks_like_codes(text: pd.Series) -> bool:
    """Single tokens mixing letters and digits (3668-QPYBK, C-00123): ids, not categories."""
    sample = text.head(500)
    token = sample.str.fullmatch(r"[A-Za-z0-9_./-]+")
    return bool((token & sample.str.contains(r"\d") & sample.str.contains(r"[A-Za-z]")).mean() > 0.9)


def _looks_like_dates(header: str, values: pd.Series, text: pd.Series, numbers: pd.Series,
                      numeric_share: float) -> bool:
    """Text dates in any style the upload reader knows; numbers only as Excel serials under a date-like header."""
    if numeric_share > 0.95:
        clean = numbers.dropna()
        return bool(_DATE_HEADERS.search(header)) and bool(clean.between(*_SERIAL_RANGE).all())
    sample = values.head(2000)
    parsed = parse_dates(sample, text.head(2000).astype("string"))
    return float(parsed.notna().mean()) > 0.9


def _known_order(values: set[str]) -> tuple[str, ...] | None:
    """The shortest known scale holding every value (at least two of them)."""
    fits = [order for order in KNOWN_ORDERS if len(values) >= 2 and values <= set(order)]
    return min(fits, key=len) if fits else None


def _as_role(inferred: ColumnRole, role: Role, values: pd.Series) -> ColumnRole:
    """An operator's override, keeping what inference learned where it still applies."""
    kept: list[str] = inferred.values
    if role in (Role.CATEGORICAL, Role.HIGH_CARDINALITY) and not kept:
        kept = [str(v) for v in values.dropna().astype(str).value_counts().index]
    return ColumnRole(name=inferred.name, role=role, reason=f"set on request (inferred: {inferred.role.value}, "
                      f"{inferred.reason})", values=kept, overridden=True,
                      decimal_comma=role == Role.NUMERIC and writes_decimal_comma(_filled_text(values)))


def describe(schema: TableSchema) -> list[dict[str, Any]]:
    """Every column with its role and reason, for the training report, the CLI and ``GET /model``."""
    return [{"column": c.name, "role": c.role.value, "reason": c.reason} for c in schema.columns]


#: Currency and percent signs a spreadsheet number may carry ('$12.50', '45 %', '3,5 €').
_SIGNS = "$€£¥%"
#: Characters a spreadsheet number may carry around its digits ('1,234', '$12.50', '45 %').
NUMBER_NOISE = rf"[,{_SIGNS}\s]"
#: The same for a column written with decimal commas ('1.234,56 €', "1'234,5"): the dot groups thousands.
DECIMAL_COMMA_NOISE = rf"[.'{_SIGNS}\s]"
#: A number whose last separator is a comma that cannot group thousands ('3,5', '1.234,56'), or whose dots do
#: ('1.234.567', '12.345,6'); and the same with the separators' parts swapped.
_COMMA_DECIMALS = re.compile(r"^[-+]?[\d.\s']*\d,(\d{1,2}|\d{4,})$|^[-+]?\d{1,3}(\.\d{3}){2,}$|"
                             r"^[-+]?\d{1,3}(\.\d{3})+,\d+$")
_DOT_DECIMALS = re.compile(r"^[-+]?[\d,\s']*\d\.(\d{1,2}|\d{4,})$|^[-+]?\d{1,3}(,\d{3}){2,}$|"
                           r"^[-+]?\d{1,3}(,\d{3})+\.\d+$")
#: Share of the telling values that must use commas: a stray English number does not flip a European column.
DECIMAL_COMMA_SHARE = 0.9


def writes_decimal_comma(text: pd.Series) -> bool:
    """Whether a column's numbers are written with decimal commas, from the values that tell ('3,5', '4.879,88',
    '1.234.567'); '1,234' alone could be either and tells nothing, so such a column keeps the dot."""
    strings = pd.Series(text.unique()).astype(str).str.replace(rf"[{_SIGNS}]", "", regex=True).str.strip()
    comma = int(strings.str.match(_COMMA_DECIMALS).sum())
    dot = int(strings.str.match(_DOT_DECIMALS).sum())
    return comma > 0 and comma >= DECIMAL_COMMA_SHARE * (comma + dot)


def numeric_values(values: pd.Series, decimal_comma: bool = False) -> pd.Series:
    """Numbers as spreadsheets hold them: '1,234', '$12.50', '45%', accounting negatives '(1,234.00)' and blanks
    (NaN); with ``decimal_comma``, as European exports write them ('1.234,56', '3,5 %')."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    if decimal_comma:  # text cells only: a workbook's real number cells are numbers already
        real = pd.Series(False, index=values.index) if _all_text(values) else \
            values.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).astype(bool)
        text = _negated(values.where(~real).astype(str)).str.replace(DECIMAL_COMMA_NOISE, "", regex=True)
        out = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce").astype(float)
        out[real] = values[real].astype(float)
        return out
    if _all_text(values):
        try:  # a column of plain numbers: removing the noise characters would change nothing
            return pd.to_numeric(values).astype(float)
        except (ValueError, TypeError):
            pass
    text = _negated(values.astype(str)).str.replace(NUMBER_NOISE, "", regex=True)
    return pd.to_numeric(text, errors="coerce").astype(float)


def _all_text(values: pd.Series) -> bool:
    """Every filled cell is text (a csv's columns; a workbook's text-only columns), found in one C pass."""
    return isinstance(values.dtype, pd.StringDtype) or pd.api.types.infer_dtype(values, skipna=True) == "string"


#: An accounting negative: the number in brackets ('(1,234.00)', '($ 12.50)').
_BRACKETED = r"^\s*\((.*)\)\s*$"


def _negated(text: pd.Series) -> pd.Series:
    """'(1,234.00)' as '-1,234.00', every other cell as it is."""
    return text.str.replace(_BRACKETED, r"-\1", regex=True)


__all__ = ["FEATURE_ROLES", "KNOWN_ORDERS", "NUMBER_NOISE", "ColumnRole", "Role", "TableSchema", "describe",
           "infer_schema", "numeric_values", "writes_decimal_comma"]
