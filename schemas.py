"""Pydantic request/response models and the customer data schema, in one place.

The customer schema says which columns exist, the header spellings accepted for each, which are
required, which are personal data (never features, never sent to the LLM, never logged) and how
values are normalised. Uploads, training and retraining all read customer files through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from flask_openapi3 import FileStorage
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from werkzeug.datastructures import FileStorage as WerkzeugFileStorage

# ---------------------------------------------------------------------------------------------
# Customer data schema
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """One canonical customer column and how spreadsheets may spell it."""

    name: str
    aliases: tuple[str, ...]
    required: bool
    pii: bool
    feature: bool


CUSTOMER_ID, DATE_JOINED, LOCATION, GENDER, LOYALTY_TIER = (
    "Customer ID", "Date Joined", "Location", "Gender", "Loyalty Tier")

CUSTOMER_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec(CUSTOMER_ID, ("customer id", "customer_id", "cust_id", "id", "customer no",
                             "customer number", "member id", "member no", "membership id"),
               required=False, pii=True, feature=False),
    ColumnSpec(DATE_JOINED, ("date joined", "date_joined", "joined_date", "join_date", "ks date",
                             "joined", "join date", "joined on", "member since", "signup date",
                             "sign up date", "registration date", "date registered", "start date"),
               required=True, pii=False, feature=True),
    ColumnSpec(LOCATION, ("location", "branch", "region", "area", "planning area", "town",
                          "district", "neighbourhood", "neighborhood", "store location"),
               required=True, pii=False, feature=True),
    ColumnSpec(GENDER, ("gender", "sex"), required=False, pii=False, feature=True),
    ColumnSpec(LOYALTY_TIER, ("loyalty tier", "loyalty_tier", "tier", "membership_level",
                              "membership level", "membership tier", "member tier", "loyalty level",
                              "loyalty status", "membership"),
               required=True, pii=False, feature=True),
    ColumnSpec("Full Name", ("full name", "name", "customer name", "first name", "last name",
                             "surname", "given name"), required=False, pii=True, feature=False),
    ColumnSpec("Email Address", ("email address", "email", "e-mail", "email_address", "mail"),
               required=False, pii=True, feature=False),
    ColumnSpec("Phone Number", ("phone number", "phone", "mobile", "mobile number", "contact number",
                                "tel", "telephone", "hp", "handphone"),
               required=False, pii=True, feature=False),
    ColumnSpec("Notes", ("notes", "note", "remarks", "comments", "comment"),
               required=False, pii=True, feature=False),
)
FEATURE_COLUMNS = tuple(c.name for c in CUSTOMER_COLUMNS if c.feature)
REQUIRED_COLUMNS = tuple(c.name for c in CUSTOMER_COLUMNS if c.required)

TIER_ORDER = {"Silver": 1, "Gold": 2, "Platinum": 3}
GENDERS = ("Female", "Male", "Other", "Unknown")

_TIER_SYNONYMS = {
    "silver": "Silver", "basic": "Silver", "standard": "Silver", "classic": "Silver",
    "regular": "Silver", "entry": "Silver", "1": "Silver", "s": "Silver",
    "gold": "Gold", "premium": "Gold", "plus": "Gold", "2": "Gold", "g": "Gold",
    "platinum": "Platinum", "plat": "Platinum", "vip": "Platinum", "elite": "Platinum",
    "diamond": "Platinum", "3": "Platinum", "p": "Platinum",
}
_TIER_NOISE_WORDS = re.compile(r"\b(tier|member(ship)?|level|status|card|class)\b")
_GENDER_SYNONYMS = {
    "m": "Male", "male": "Male", "man": "Male", "men": "Male", "boy": "Male", "mr": "Male",
    "f": "Female", "female": "Female", "woman": "Female", "women": "Female", "girl": "Female",
    "ms": "Female", "mrs": "Female", "other": "Other", "non-binary": "Other", "nonbinary": "Other",
    "non binary": "Other", "x": "Other", "prefer not to say": "Unknown", "undisclosed": "Unknown",
    "unknown": "Unknown", "n/a": "Unknown", "na": "Unknown", "-": "Unknown", "": "Unknown",
}


def header_key(header: object) -> str:
    """Compare headers ignoring case, spaces, underscores and punctuation."""
    return re.sub(r"[^0-9a-z]", "", str(header).lower())


_HEADER_LOOKUP: dict[str, str] = {}
for _spec in CUSTOMER_COLUMNS:
    for _alias in (_spec.name, *_spec.aliases):
        _HEADER_LOOKUP.setdefault(header_key(_alias), _spec.name)


def canonical_column(header: object) -> str | None:
    """The canonical column a spreadsheet header stands for, or None when it is not ours."""
    return _HEADER_LOOKUP.get(header_key(header))


def accepted_names(column: str) -> list[str]:
    """Header spellings accepted for a canonical column, for error messages and /options."""
    spec = next(c for c in CUSTOMER_COLUMNS if c.name == column)
    return [spec.name, *spec.aliases]


def normalise_tier(value: object) -> str | None:
    """Map a tier spelling to Silver/Gold/Platinum, or None when it is not a tier we know."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text.endswith(".0"):
        text = text[:-2]
    text = _TIER_NOISE_WORDS.sub(" ", text).strip()
    return _TIER_SYNONYMS.get(text)


def normalise_gender(value: object) -> str | None:
    """Map a gender spelling to Female/Male/Other/Unknown, or None when unrecognised."""
    text = "" if value is None else str(value).strip().lower().rstrip(".")
    return _GENDER_SYNONYMS.get(text)


def normalise_location(value: object) -> str | None:
    """Tidy a location: trimmed, single-spaced, title case; None when blank."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    if not text or text.lower() in {"nan", "none", "null", "n/a", "-"}:
        return None
    return " ".join(_capitalise(word) for word in text.split(" "))


def _capitalise(word: str) -> str:
    """'ANG' → 'Ang', "john's" → "John's", '@orchard' → '@Orchard'; mixed case ('McNair') is kept."""
    if not (word.islower() or word.isupper()):
        return word
    return re.sub(r"[a-z]", lambda m: m.group(0).upper(), word.lower(), count=1)


# ---------------------------------------------------------------------------------------------
# Campaign inputs (smart form, upload form fields)
# ---------------------------------------------------------------------------------------------

PLATFORMS = ("Instagram", "Facebook", "TikTok", "LinkedIn", "X", "Email", "Website")
TONES = ("Professional", "Casual", "Playful", "Empathetic", "Fun", "Inspirational", "Urgent")
OUTPUTS = ("text", "image", "both")
FUNNEL_STAGES = ("Awareness", "Consideration", "Conversion", "Retention", "Advocacy")
ENGAGEMENT_LEVELS = ("Low", "Medium", "High")
OBJECTIVE_SUGGESTIONS = (
    "Drive app installs", "Increase sales", "Build brand awareness", "Generate leads",
    "Retain existing customers", "Promote an event", "Drive website traffic",
    "Launch a new product", "Win back lapsed customers",
)
INDUSTRY_SUGGESTIONS = (
    "Retail", "Food & Beverage", "Beauty & Wellness", "Fashion", "Travel & Hospitality",
    "Financial Services", "Education", "Technology", "Healthcare", "Real Estate",
)
#: Common spellings of each choice, per list: "loyalty" is a funnel stage, never a platform.
PLATFORM_ALIASES = {"twitter": "X", "x (twitter)": "X", "fb": "Facebook", "ig": "Instagram", "e-mail": "Email",
                    "email newsletter": "Email", "web": "Website", "blog": "Website"}
OUTPUT_ALIASES = {"image prompt": "image", "image_prompt": "image", "text and image": "both", "text + image": "both"}
FUNNEL_ALIASES = {"tofu": "Awareness", "mofu": "Consideration", "bofu": "Conversion",
                  "awareness stage": "Awareness", "loyalty": "Retention"}
ENGAGEMENT_ALIASES = {"med": "Medium", "moderate": "Medium"}


def _choice(allowed: tuple[str, ...], aliases: dict[str, str] | None = None) -> BeforeValidator:
    """A validator that accepts any casing or one of this list's aliases and returns the canonical value."""
    lookup = {a.lower(): a for a in allowed}
    lookup.update(aliases or {})

    def pick(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return lookup.get(" ".join(value.split()).lower(), value)

    return BeforeValidator(pick)


Platform = Annotated[Literal[PLATFORMS], _choice(PLATFORMS, PLATFORM_ALIASES)]  # type: ignore[valid-type]
Tone = Annotated[Literal[TONES], _choice(TONES)]  # type: ignore[valid-type]
Output = Annotated[Literal[OUTPUTS], _choice(OUTPUTS, OUTPUT_ALIASES)]  # type: ignore[valid-type]
FunnelStage = Annotated[Literal[FUNNEL_STAGES], _choice(FUNNEL_STAGES, FUNNEL_ALIASES)]  # type: ignore[valid-type]
Engagement = Annotated[Literal[ENGAGEMENT_LEVELS],  # type: ignore[valid-type]
                       _choice(ENGAGEMENT_LEVELS, ENGAGEMENT_ALIASES)]
OptionalText = Annotated[str | None, Field(default=None, max_length=300)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ContentPreferences(_Strict):
    """How the content should come out."""

    platform: Platform = "Instagram"
    tone: Tone = "Professional"
    prefer_output: Output = "text"
    num_variants: int = Field(1, ge=1, le=5)
    language: str | None = Field(None, max_length=40, description="e.g. English, Chinese, Malay")


Objective = Annotated[str, Field(min_length=1, max_length=300)]
Industry = Annotated[str, Field(min_length=1, max_length=100)]


class _CampaignDetails(_Strict):
    """The optional campaign fields every request shares; free text is length-limited and quoted as data."""

    brand_name: str | None = Field(None, max_length=100)
    product: OptionalText
    offer: OptionalText


class CampaignInputs(_CampaignDetails):
    """What the campaign is about."""

    objective: Objective
    industry: Industry
    funnel_stage: FunnelStage
    past_engagement: Engagement


EARLIEST_JOIN_DATE = date(1980, 1, 1)
#: Dates are judged in the business's timezone, as uploads are: "the future" is the future in Singapore.
BUSINESS_TIMEZONE = ZoneInfo("Asia/Singapore")


def business_today() -> date:
    return datetime.now(BUSINESS_TIMEZONE).date()


AudienceValue = Annotated[str, Field(max_length=100)] | float | bool | None
_AUDIENCE_CHOICES = {"gender": (normalise_gender, GENDERS), "loyalty_tier": (normalise_tier, tuple(TIER_ORDER))}


class Audience(_Strict):
    """Optional audience traits of the smart form; when given, the pipeline picks the persona.

    Values are normalised here (any spelling the upload schema accepts), so what reaches the pipeline
    is canonical; ``join_year`` + ``join_month`` become ``date_joined``.
    """

    location: str | None = Field(None, max_length=100)
    gender: str | None = Field(None, max_length=30)
    loyalty_tier: str | None = Field(None, max_length=30)
    date_joined: date | None = None
    join_month: int | None = Field(None, ge=1, le=12)
    join_year: int | None = Field(None, ge=1980, le=2100)
    audience: dict[Annotated[str, Field(min_length=1, max_length=100)], AudienceValue] | None = Field(
        None, max_length=60, description="Any schema: the live model's columns and a value each, e.g. "
                                         "{\"Age\": 34, \"Membership\": \"Gold\"} (GET /options lists them); "
                                         "columns left out count as the training base's typical value.")

    @field_validator("audience")
    @classmethod
    def _no_empty_audience(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return value or None

    @field_validator("location")
    @classmethod
    def _tidy_location(cls, value: str | None) -> str | None:
        return normalise_location(value)

    @field_validator("gender", "loyalty_tier")
    @classmethod
    def _known_choice(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Any spelling uploads accept (blank means not given); otherwise the allowed values are named."""
        if value is None or not value.strip():
            return None
        normalise, allowed = _AUDIENCE_CHOICES[str(info.field_name)]
        canonical = normalise(value)
        if canonical is None:
            raise PydanticCustomError("not_recognised", "{field} is not recognised; use one of {choices}",
                                      {"field": info.field_name, "choices": ", ".join(allowed),
                                       "allowed": list(allowed)})
        return canonical

    @model_validator(mode="after")
    def _one_joining_date(self) -> Audience:
        if (self.join_month is None) != (self.join_year is None) and self.date_joined is None:
            raise ValueError("give join_month and join_year together, or date_joined")
        if self.date_joined is None and self.join_year is not None:
            self.date_joined = date(self.join_year, self.join_month or 1, 1)
        if self.date_joined and self.date_joined > business_today():
            raise ValueError("date_joined (or join_year/join_month) is in the future; use a past date")
        if self.date_joined and self.date_joined < EARLIEST_JOIN_DATE:
            raise ValueError(f"date_joined is before {EARLIEST_JOIN_DATE.year}; check the year")
        return self

    def given(self) -> bool:
        """True when any audience trait was sent; a subclass's campaign fields do not count."""
        return any(getattr(self, name) is not None for name in Audience.model_fields)


class _SplitsIntoCampaign(BaseModel):
    """A request that carries campaign fields and content preferences among others."""

    def preferences(self) -> ContentPreferences:
        """The content preferences, validated once from this request's fields."""
        return ContentPreferences.model_validate({k: getattr(self, k) for k in ContentPreferences.model_fields})

    def campaign_and_preferences(self) -> tuple[CampaignInputs, ContentPreferences]:
        """The campaign and the preferences, each validated once from this request's fields."""
        return (CampaignInputs.model_validate({k: getattr(self, k) for k in CampaignInputs.model_fields}),
                self.preferences())


class GeneratePromoRequest(ContentPreferences, CampaignInputs, Audience, _SplitsIntoCampaign):
    """Body of POST /generate-promo."""

    cluster_id: int | None = Field(None, ge=0, description="Use this segment's persona.")


class GeneratePostRequest(ContentPreferences, _CampaignDetails, _SplitsIntoCampaign):
    """Body of POST /generate-post: new content for one segment of an upload or one persona.

    Without ``upload_id`` every required campaign field must be given; with it, given fields override the
    upload's campaign.
    """

    cluster_id: int = Field(ge=0)
    upload_id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    objective: Objective | None = None
    industry: Industry | None = None
    funnel_stage: FunnelStage | None = None
    past_engagement: Engagement | None = None

    def campaign_overrides(self) -> dict[str, Any]:
        """The campaign fields this request sets."""
        return self.model_dump(include=set(CampaignInputs.model_fields), exclude_none=True)

    def missing_campaign_fields(self) -> list[str]:
        """Required campaign fields this request leaves out."""
        given = self.campaign_overrides()
        return [name for name, info in CampaignInputs.model_fields.items() if info.is_required() and name not in given]


class UploadForm(ContentPreferences, _CampaignDetails, _SplitsIntoCampaign):
    """Optional campaign fields sent with an upload (multipart form fields)."""

    objective: Objective = "Increase sales"
    industry: Industry = "Retail"
    funnel_stage: FunnelStage = "Consideration"
    past_engagement: Engagement = "Medium"


class UploadRequest(UploadForm):
    """Multipart body of POST /upload-excel: the file plus optional campaign fields."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    file: FileStorage = Field(description="The customer list: .xlsx, .xls or .csv (field name `file`).")

    @field_validator("file")
    @classmethod
    def _is_a_file_part(cls, value: Any) -> Any:
        """A plain text field named `file` is not an upload (flask-openapi3 passes it through as str)."""
        if not isinstance(value, WerkzeugFileStorage):
            raise ValueError("send the customer list as a file part (with a filename), not as a text field")
        return value


class UploadPath(BaseModel):
    upload_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="Id returned by POST /upload-excel.")


class PersonaPath(BaseModel):
    cluster_id: int = Field(ge=0)


# ---------------------------------------------------------------------------------------------
# Responses (documented in /openapi.json so the frontend can generate a typed client)
# ---------------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. missing_columns.")
    message: str = Field(description="What is wrong and how to fix it.")
    details: Any = None


class ErrorEnvelope(BaseModel):
    """Every error, whatever the route or status."""

    status: Literal["error"] = "error"
    model_version: str | None = Field(description="The live model's version; null when none is loaded.")
    error: ErrorBody


ResponseSpec = type[BaseModel] | dict[Any, Any] | None
ERROR_RESPONSES: dict[str | int | HTTPStatus, ResponseSpec] = {
    code: ErrorEnvelope for code in (400, 404, 405, 413, 415, 422, 429, 500, 503)}


class Check(BaseModel):
    name: str
    passed: bool
    detail: str | None = None


class Variant(BaseModel):
    text: str | None
    headline: str | None = None
    cta: str | None = None
    hashtags: list[str] = []
    image_prompt: str | None = None
    image_url: str | None = None
    char_count: int = 0
    shortened: bool = False
    score: int = Field(0, ge=0, le=100)
    checks: list[Check] = []


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Content(BaseModel):
    provider: Literal["openai", "offline"]
    model: str | None = None
    cached: bool = False
    degraded: bool = False
    degraded_reason: str | None = None
    variants: list[Variant]
    text: str | None = None
    image_prompt: str | None = None
    usage: Usage = Usage()
    elapsed_ms: int = 0


class Persona(BaseModel):
    """Aggregate portrait of a segment; never contains customer-level data."""

    model_config = ConfigDict(extra="allow")
    cluster_id: int | None
    name: str
    summary: str
    size: int
    share: float
    traits: dict[str, Any]
    distinguishing_traits: list[dict[str, Any]]
    suggested_tone: str
    content_angles: list[str]


class PromoResponse(BaseModel):
    status: Literal["ok"] = "ok"
    model_version: str | None
    cluster_id: int | None
    persona: Persona
    persona_source: Literal["audience", "cluster_id", "general", "upload"]
    confidence: float | None = None
    audience_assumed: dict[str, Any] | None = None
    upload_id: str | None = None
    content: Content


class ListProfile(BaseModel):
    """What this list's own members of a segment look like, beside the persona (the training base's archetype).
    Aggregates only; no category is named for fewer than 10 customers."""

    model_config = ConfigDict(extra="allow")
    size: int
    share: float = Field(description="Share of this list's placed customers.")
    summary: str
    traits_vs_list: list[dict[str, Any]] = Field(
        description="Top traits by lift against the whole list: trait (with its numbers), column, value, share, "
                    "list_share or compared_share, lift.")
    traits_vs_base: list[dict[str, Any]] = Field(
        description="Top traits by lift against the model's training base (empty for a release without its "
                    "training-base distributions).")
    tier_mix: dict[str, float] | None = None
    top_locations: list[dict[str, Any]] | None = None
    median_tenure_months: int | None = None


class ModelFitAction(BaseModel):
    message: str
    command: str = Field(description="The command that trains a model on this file.")
    admin_call: dict[str, Any] = Field(description="The admin call that trains on this upload (POST /admin/train).")


class ModelFit(BaseModel):
    """Whether the list looks like the customers the model was trained on."""

    available: bool = Field(description="false for a release saved without its training-base distributions.")
    score: float | None = Field(description="0-1; the weakest part's score.")
    verdict: Literal["good", "weak", "poor"] | None
    weakest: str | None = None
    reason: str | None = None
    parts: dict[str, dict[str, Any]] = Field(
        description="unseen_categories, out_of_range, skipped_rows, mean_confidence, reassigned_share, "
                    "distribution_distance (per feature), each with its value, score and scale.")
    thresholds: dict[str, float] | None = None
    action: ModelFitAction | None = Field(None, description="When weak or poor: how to train on this list.")


class SegmentResult(BaseModel):
    cluster_id: int
    persona: Persona
    list_profile: ListProfile | None = None
    size: int
    share: float
    mean_confidence: float
    reassigned: int
    content: Content


class RowCounts(BaseModel):
    received: int
    used: int
    skipped: int
    reassigned_from_noise: int


class SkippedExample(BaseModel):
    row: int = Field(description="Spreadsheet row number (the header is row 1).")
    reason: str


class UploadResponse(BaseModel):
    status: Literal["ok"] = "ok"
    upload_id: str
    model_version: str
    file: dict[str, Any]
    rows: RowCounts
    skipped_examples: list[SkippedExample]
    segments: list[SegmentResult] = Field(description="Largest first.")
    model_fit: ModelFit | None = None
    timings_ms: dict[str, float]
    rolled_up: dict[str, int] | None = Field(
        None, description="An order export placed per customer: its order rows and the customers they rolled up "
                          "into (models trained on a learned table schema only).")


class PersonasResponse(BaseModel):
    status: Literal["ok"] = "ok"
    model_version: str
    personas: list[Persona]


class PersonaResponse(BaseModel):
    status: Literal["ok"] = "ok"
    model_version: str
    persona: Persona
    profile: dict[str, Any] | None


class SegmentInRelease(BaseModel):
    """One segment id in one release kept in PRODUCTION_MODELS_DIR."""

    version: str
    created_at: str | None
    live: bool
    kind: Literal["loyalty", "table"]
    name: str | None
    size: int | None
    share: float | None
    status: Literal["kept", "new"] | None = Field(
        None, description="kept: it continues the segment of this id in the release before; new: it started here.")
    note: str | None = Field(None, description="e.g. 'split from segment 2', 'kept; merged with segment 4'.")
    top_traits: list[str]


class PersonaHistoryResponse(BaseModel):
    status: Literal["ok"] = "ok"
    model_version: str | None
    cluster_id: int
    releases: list[SegmentInRelease] = Field(description="Oldest first; only releases that have this segment.")


class Overlap(BaseModel):
    id: int
    share: float


class SegmentChange(BaseModel):
    """A segment of the live release and the segments of the release before it that its customers were in."""

    model_config = ConfigDict(extra="allow")
    id: int
    status: Literal["kept", "new"]
    previous_id: int | None
    name: str | None = None
    name_kept: bool | None = Field(None, description="false: the traits changed beyond the bound, so it was renamed.")
    previous_name: str | None = None
    share_of_segment: float | None = Field(None, description="Share of this segment that was in previous_id.")
    share_of_previous: float | None = Field(None, description="Share of previous_id that is in this segment.")
    from_: list[Overlap] = Field(alias="from", description="Previous segments its customers were in, by share.")
    note: str


class VanishedSegment(BaseModel):
    id: int
    went_to: list[Overlap] = Field(description="Live segments its customers are in now, by share.")
    note: str


class ModelChangesResponse(BaseModel):
    """How the live release's segment ids continue those of the release it replaced."""

    status: Literal["ok"] = "ok"
    model_version: str
    method: Literal["placement", "none"] = Field(
        description="placement: the new training customers were placed with the release before and their segments "
                    "compared; none: nothing to compare with (see reason).")
    reason: str = ""
    compared_with: str | None
    rows_compared: int = 0
    customers_kept_share: float | None = Field(None, description="Share of compared customers keeping their id.")
    match_share: float | None = Field(None, description="A segment kept its id when each held more than this share "
                                                        "of the other's customers.")
    trait_overlap: float | None = Field(None, description="A kept segment kept its name while this share of its "
                                                          "distinguishing traits remained.")
    next_id: int | None = None
    counts: dict[str, int] = Field(default_factory=dict, description="kept, new and vanished segments.")
    segments: list[SegmentChange]
    vanished: list[VanishedSegment]


class TypicalRange(BaseModel):
    low: float | str = Field(description="10th percentile of the training base (a date as YYYY-MM-DD).")
    median: float | str
    high: float | str = Field(description="90th percentile of the training base.")


class AudienceField(BaseModel):
    name: str = Field(description="A key for `audience` on POST /generate-promo.")
    type: str = Field(description="numeric, date, boolean, categorical, ordinal or high_cardinality")
    values: list[str] = Field(default_factory=list, description="Allowed values, lowest first for ordinal; "
                                                                   "empty when any value is accepted.")
    typical: TypicalRange | None = Field(None, description="Numbers and dates: where the training base's middle "
                                                            "80% lie, and its median (any value is accepted).")


class OptionsResponse(BaseModel):
    status: Literal["ok"] = "ok"
    model_version: str | None
    audience_fields: list[AudienceField] = Field(default_factory=list,
                                                 description="The live model's columns the smart form can set.")
    locations: list[str]
    genders: list[str]
    loyalty_tiers: list[str]
    objectives: list[str]
    industries: list[str]
    funnel_stages: list[str]
    past_engagement: list[str]
    platforms: list[str]
    tones: list[str]
    outputs: list[str]
    num_variants: dict[str, int]
    segments: list[dict[str, Any]]


class RedisState(BaseModel):
    status: Literal["ok", "unavailable", "not configured"]
    reason: str | None = None


class ModelColumn(BaseModel):
    column: str
    role: str
    reason: str


class ModelResponse(BaseModel):
    """The live release: its kind, how it reads each column and why, and its quality figures."""

    status: Literal["ok"] = "ok"
    model_version: str
    kind: Literal["loyalty", "table"]
    created_at: str | None
    training_rows: int | None
    sources: list[str]
    columns: list[ModelColumn]
    feature_blocks: dict[str, Any] | None = None
    rolled_up: dict[str, Any] | None = None
    metrics: dict[str, Any]
    timings: dict[str, Any]


class HealthResponse(BaseModel):
    status: Literal["ok", "error"]
    service_version: str
    model_version: str | None
    model_created_at: str | None
    persona_count: int
    content_provider: Literal["openai", "offline"]
    next_retrain: str | None
    scheduler: str | None = None
    redis: RedisState | None = None
    warning: str | None = None
    error: ErrorBody | None = None
