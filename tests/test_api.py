"""The HTTP surface, through Flask's test client: every route, status and error of the REST API.

Fixture files are in tests/data (`make_fixtures.py` for ingestion, `make_api_fixtures.py` for these tests).
"""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from portal.serving.upload_store import hash_customer_ids
from tests.data.make_api_fixtures import API_PII_VALUES, FORMULA_CELLS, FORMULA_HEADER
from tests.data.make_fixtures import PII_VALUES
from tests.test_roles import DATASETS, real_file

DATA = Path(__file__).parent / "data"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CAMPAIGN = {"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness",
            "past_engagement": "Low"}


def upload(client, name: str | None = None, *, data: bytes | None = None, filename: str | None = None,
           **form: str):
    """POST /upload-excel with a fixture file (or raw bytes) in field `file` plus form fields."""
    content = data if data is not None else (DATA / name).read_bytes()
    return client.post("/upload-excel", data={"file": (io.BytesIO(content), filename or name or "upload.xlsx"),
                                              **form}, content_type="multipart/form-data")


def assert_error(response, status: int, code: str, *fix_words: str) -> dict:
    """The response is the error envelope with this status and code, and its message names the fix."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["status"] == "error" and "model_version" in body
    assert body["error"]["code"] == code, body
    for word in fix_words:
        assert word.lower() in body["error"]["message"].lower(), (word, body["error"]["message"])
    return body


@pytest.fixture
def live_version(app) -> str:
    return app.extensions["portal"].model_version()


# ---------------------------------------------------------------------------------------------
# POST /upload-excel: files that work
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "file_format", "sheet", "used", "skipped", "header_seen"), [
    ("aliased_headers.xlsx", "xlsx", "Sheet1", 4, 0, {"BRANCH": "Location", "Membership Level": "Loyalty Tier",
                                                       "joined_date": "Date Joined", "Sex": "Gender"}),
    ("dates_text.xlsx", "xlsx", "Customers", 14, 0, {"Date Joined": "Date Joined"}),
    ("cover_sheet.xlsx", "xlsx", "Customers", 5, 0, {"Full Name": "Full Name"}),
    ("title_row.xlsx", "xlsx", "Export", 3, 0, {"Gender": "Gender"}),
    ("formulas.xlsx", "xlsx", "Sheet1", 3, 1, {"Notes": "Notes"}),
    ("customers.xls", "xls", "Customers", 5, 0, {"Loyalty Tier": "Loyalty Tier"}),
    ("customers.csv", "csv", None, 4, 0, {"Customer ID": "Customer ID"}),
    ("customers_semicolon.csv", "csv", None, 3, 0, {"region": "Location", "tier": "Loyalty Tier"}),
])
def test_upload_accepts_real_world_files(client, live_version, name, file_format, sheet, used, skipped,
                                         header_seen):
    """Aliases in any case, text and Excel dates, extra sheets, .xls, .csv and formulas all upload."""
    response = upload(client, name)

    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["status"] == "ok" and body["model_version"] == live_version
    assert re.fullmatch(r"[0-9a-f]{32}", body["upload_id"])
    assert body["file"]["format"] == file_format and body["file"]["sheet"] == sheet
    assert header_seen.items() <= body["file"]["columns"].items()
    assert body["rows"]["used"] == used and body["rows"]["skipped"] == skipped
    assert sum(s["size"] for s in body["segments"]) == used
    assert all(s["content"]["variants"][0]["text"] for s in body["segments"])


def test_upload_skips_bad_rows_with_row_numbers_and_keeps_the_rest(client):
    """Rows with bad values are reported by spreadsheet row number and reason; the batch still succeeds."""
    body = upload(client, "bad_rows.xlsx").get_json()

    assert body["status"] == "ok"
    assert (body["rows"]["received"], body["rows"]["used"], body["rows"]["skipped"]) == (11, 2, 9)
    reasons = {example["row"]: example["reason"] for example in body["skipped_examples"]}
    assert sorted(reasons) == [3, 4, 5, 7, 8, 9, 10, 11, 12]
    assert "Silver, Gold or Platinum" in reasons[3]
    assert "future" in reasons[8] and "1980" in reasons[9]
    assert reasons[12].count(";") >= 2  # a row with three problems names all three


def test_upload_segments_come_largest_first(client):
    """Segments are ordered by size, and their sizes and shares add up to the rows used."""
    body = upload(client, "api_segments_mix.csv").get_json()

    sizes = [segment["size"] for segment in body["segments"]]
    assert len(sizes) >= 2
    assert sizes == sorted(sizes, reverse=True)
    assert sum(sizes) == body["rows"]["used"] == 47
    assert sum(segment["share"] for segment in body["segments"]) == pytest.approx(1, abs=0.01)


def test_upload_uses_campaign_form_fields(client):
    """The smart form's preferences ride along as form fields, in any casing or common alias."""
    body = upload(client, "customers.csv", platform="tiktok", tone="fun", num_variants="2",
                  objective="Win back lapsed customers").get_json()

    assert body["status"] == "ok"
    assert all(len(segment["content"]["variants"]) == 2 for segment in body["segments"])


@pytest.mark.parametrize("name", ["pii_columns.xlsx", "api_pii_accepted.xlsx"])
def test_upload_response_has_no_customer_level_data(client, name):
    """Names, emails, phones, ids and notes from the file appear nowhere in the JSON (skipped rows included)."""
    response = upload(client, name)

    assert response.status_code == 200
    text = response.get_data(as_text=True).lower()
    assert response.get_json()["rows"]["used"] >= 2
    for value in (*PII_VALUES, *API_PII_VALUES):
        assert value.lower() not in text, value


def test_upload_is_stored_under_a_server_name_with_a_pii_free_snapshot(app, client, workspace):
    """The original is kept under the upload id (never the client's name, never overwritten); the
    retraining snapshot holds only feature columns and salted hashes of the customer ids."""
    original = (DATA / "api_pii_accepted.xlsx").read_bytes()
    first = upload(client, data=original, filename="../../etc/customers.xlsx").get_json()
    second = upload(client, data=original, filename="../../etc/customers.xlsx").get_json()

    assert first["upload_id"] != second["upload_id"]
    stored = sorted(p.relative_to(workspace["uploads"]).as_posix() for p in workspace["uploads"].rglob("*")
                    if p.is_file())
    assert [p for p in stored if "original" in p] == sorted(f"{u['upload_id']}/original.xlsx"
                                                            for u in (first, second))
    assert (workspace["uploads"] / first["upload_id"] / "original.xlsx").read_bytes() == original
    assert not any("etc" in p or "customers" in p for p in stored)
    assert not (workspace["uploads"].parent / "etc").exists()

    day = datetime.now(UTC).strftime("%Y-%m-%d")
    snapshot = workspace["base_data"] / day / f"upload-{first['upload_id']}.csv"
    lines = snapshot.read_text().splitlines()
    assert lines[0] == "Customer ID,Date Joined,Location,Gender,Loyalty Tier"
    assert len(lines) == 1 + first["rows"]["used"]
    ids = [line.split(",")[0] for line in lines[1:]]
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids)
    salt = app.extensions["portal"].settings.snapshot_salt.get_secret_value()
    assert ids[0] == hash_customer_ids(pd.Series([API_PII_VALUES[0]]), salt).iloc[0]
    stored_text = "".join(p.read_text(errors="replace") for p in workspace["base_data"].rglob("*.csv")).lower()
    stored_text += (workspace["uploads"] / first["upload_id"] / "record.json").read_text().lower()
    for value in API_PII_VALUES:
        assert value.lower() not in stored_text, value


# ---------------------------------------------------------------------------------------------
# POST /upload-excel: files and requests that do not work
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "status", "code", "fix"), [
    ("empty.xlsx", 400, "bad_request", "empty"),
    ("empty_sheet.xlsx", 422, "missing_columns", "accepted names"),
    ("header_only.xlsx", 422, "invalid_file", "add the customers"),
    ("wrong_columns.xlsx", 422, "missing_columns", "loyalty_tier"),
    ("missing_tier.csv", 422, "missing_columns", "membership level"),
    ("all_bad.csv", 422, "invalid_file", "row 2"),
    ("text_renamed.xlsx", 415, "unsupported_file", "save the customer list"),
    ("html_renamed.xls", 415, "unsupported_file", "save it as .xlsx"),
    ("word_renamed.xlsx", 415, "unsupported_file", "not an excel workbook"),
    ("truncated.xlsx", 422, "invalid_file", "save it again"),
    ("truncated.xls", 422, "invalid_file", "save it again"),
    ("zip_bomb.xlsx", 422, "invalid_file", "refused"),
    ("zip_bomb_declared.xlsx", 422, "invalid_file", "split the customers"),
    ("xml_bomb.xlsx", 422, "invalid_file", "entity"),
    ("password.xlsx", 422, "invalid_file", "remove the password"),
])
def test_unusable_files_get_a_quick_4xx_that_says_what_to_do(client, workspace, name, status, code, fix):
    """Every broken, hostile or unsupported file is refused in the envelope, quickly, and nothing is stored."""
    started = time.perf_counter()
    response = upload(client, name)

    assert time.perf_counter() - started < 5
    assert_error(response, status, code, fix)
    assert not any(workspace["uploads"].iterdir()) and not any(workspace["base_data"].iterdir())


def test_missing_columns_are_listed_with_their_accepted_aliases(client):
    """A 422 that names each missing column and every header spelling accepted for it."""
    body = assert_error(upload(client, "wrong_columns.xlsx"), 422, "missing_columns", "Date Joined", "Location")

    missing = {m["column"]: m["accepted_names"] for m in body["error"]["details"]["missing"]}
    assert set(missing) == {"Date Joined", "Location", "Loyalty Tier"}
    assert {"branch", "region"} <= set(missing["Location"])
    assert {"tier", "membership level"} <= set(missing["Loyalty Tier"])


@pytest.mark.parametrize("max_upload_mb", [1, 2])
def test_oversize_upload_is_413_naming_the_limit(make_app, max_upload_mb):
    """A body over MAX_UPLOAD_MB is refused with 413 before it is read, in the envelope."""
    client = make_app(max_upload_mb=max_upload_mb).test_client()
    big = b"Date Joined,Location,Loyalty Tier\n" + b"2020-01-01,Bedok,Gold\n" * (60_000 * max_upload_mb)

    assert_error(upload(client, data=big, filename="big.csv"), 413, "payload_too_large", "MAX_UPLOAD_MB",
                 f"{max_upload_mb} MB")
    assert upload(client, data=big[: 500_000], filename="small.csv").status_code == 200


@pytest.mark.parametrize("request_kwargs", [
    {"data": {}, "content_type": "multipart/form-data"},
    {"data": {"file": "Date Joined,Location,Loyalty Tier"}, "content_type": "multipart/form-data"},
    {"data": {"upload": (io.BytesIO(b"x"), "c.csv")}, "content_type": "multipart/form-data"},
    {"json": {"file": "customers.xlsx"}},
    {"data": b"garbage", "content_type": "multipart/form-data; boundary=xyz"},
], ids=["no-fields", "file-as-text", "wrong-field-name", "json-body", "broken-multipart"])
def test_upload_without_a_file_part_is_422_naming_the_field(client, request_kwargs):
    """However the file is missing, the answer says to attach it as multipart field 'file'."""
    response = client.post("/upload-excel", **request_kwargs)

    assert_error(response, 422, "validation_error", "multipart/form-data field 'file'")


@pytest.mark.parametrize(("field", "value"), [("platform", "Myspace"), ("num_variants", "9"),
                                              ("prefer_output", "video"), ("funnel_stage", "Launch")])
def test_upload_with_a_bad_form_field_is_422(client, field, value):
    body = assert_error(upload(client, "customers.csv", **{field: value}), 422, "validation_error", field)
    assert [p["field"] for p in body["error"]["details"]] == [field]


# ---------------------------------------------------------------------------------------------
# GET /uploads/<upload_id>/segments.xlsx
# ---------------------------------------------------------------------------------------------

def _sheet(response) -> tuple[list[str], list[list[object]], openpyxl.worksheet.worksheet.Worksheet]:
    workbook = openpyxl.load_workbook(io.BytesIO(response.data))
    sheet = workbook.active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    return rows[0], rows[1:], sheet


def test_segments_export_adds_segment_columns_to_the_file(client):
    """Every accepted customer with its own columns plus segment id, persona name and confidence."""
    body = upload(client, "cover_sheet.xlsx").get_json()
    response = client.get(f"/uploads/{body['upload_id']}/segments.xlsx")

    assert response.status_code == 200 and response.mimetype == XLSX
    assert f"segments-{body['upload_id']}.xlsx" in response.headers["Content-Disposition"]
    header, rows, _ = _sheet(response)
    assert header[:9] == ["Customer ID", "Full Name", "Email Address", "Phone Number", "Date Joined", "Location",
                          "Gender", "Loyalty Tier", "Notes"]
    assert header[-4:] == ["Segment ID", "Persona", "Confidence", "Reassigned from noise"]
    assert len(rows) == body["rows"]["used"]
    names = {s["cluster_id"]: s["persona"]["name"] for s in body["segments"]}
    assert all(names[row[-4]] == row[-3] and 0 <= row[-2] <= 1 for row in rows)


@pytest.mark.parametrize("name", ["api_formula_text.xlsx", "formulas.xlsx"])
def test_segments_export_keeps_formula_looking_text_as_text(client, name):
    """Text starting with = + - @ (cells and headers) comes back byte-identical, in string cells Excel
    never runs: no formula cell anywhere, no apostrophe added."""
    upload_id = upload(client, name).get_json()["upload_id"]
    header, rows, sheet = _sheet(client.get(f"/uploads/{upload_id}/segments.xlsx"))

    assert not [cell.coordinate for row in sheet.iter_rows() for cell in row if cell.data_type == "f"]
    texts = [value for value in [*header, *(v for row in rows for v in row)] if isinstance(value, str)]
    assert not [t for t in texts if t.startswith("'")]
    if name == "api_formula_text.xlsx":
        assert FORMULA_HEADER in header
        assert set(FORMULA_CELLS) <= set(texts)


def test_segments_export_keeps_phone_numbers_exactly(client):
    """'+65 …' phone numbers were exported as "'+65 …" with a visible apostrophe."""
    data = (b"Date Joined,Location,Loyalty Tier,Phone Number\n"
            b"2020-01-05,Bedok,Gold,+65 9123 4567\n2021-03-04,Yishun,Silver,-\n")
    upload_id = upload(client, data=data, filename="phones.csv").get_json()["upload_id"]
    header, rows, _ = _sheet(client.get(f"/uploads/{upload_id}/segments.xlsx"))
    phones = [row[header.index("Phone Number")] for row in rows]
    assert phones == ["+65 9123 4567", "-"]


def test_segments_export_of_a_reuploaded_export_replaces_the_old_segment_columns(client):
    """Marketers upload the exported file again; the new export has one set of segment columns."""
    upload_id = upload(client, "customers.csv").get_json()["upload_id"]
    exported = client.get(f"/uploads/{upload_id}/segments.xlsx").data
    again = upload(client, data=exported, filename="segments.xlsx").get_json()["upload_id"]

    response = client.get(f"/uploads/{again}/segments.xlsx")
    assert response.status_code == 200
    header, _, _ = _sheet(response)
    assert header.count("Segment ID") == 1 and header.count("Persona") == 1


@pytest.mark.parametrize(("upload_id", "status"), [("0" * 32, 404), ("not-an-id", 422), ("..%2F..%2Fapp.py", 404)])
def test_segments_export_of_an_unknown_upload_is_4xx(client, upload_id, status):
    response = client.get(f"/uploads/{upload_id}/segments.xlsx")

    assert response.status_code == status and response.get_json()["status"] == "error"


# ---------------------------------------------------------------------------------------------
# POST /generate-promo
# ---------------------------------------------------------------------------------------------

def test_promo_with_audience_fields_places_the_audience(client, live_version):
    """Audience traits go through the pipeline; gaps are filled and reported as assumed."""
    response = client.post("/generate-promo", json={**CAMPAIGN, "location": "tampines", "gender": "F",
                                                    "loyalty_tier": "gold"})

    body = response.get_json()
    assert response.status_code == 200 and body["persona_source"] == "audience"
    assert body["model_version"] == live_version
    assert body["persona"]["cluster_id"] == body["cluster_id"] is not None
    assert 0 <= body["confidence"] <= 1
    assert set(body["audience_assumed"]) == {"date_joined"}
    assert body["content"]["provider"] == "offline" and body["content"]["variants"][0]["text"]


@pytest.mark.parametrize("audience", [{"join_year": 2019, "join_month": 5}, {"date_joined": "2018-02-03"},
                                      {"location": "Atlantis"}])
def test_promo_with_partial_audience_still_uses_the_pipeline(client, audience):
    body = client.post("/generate-promo", json={**CAMPAIGN, **audience}).get_json()

    assert body["persona_source"] == "audience" and body["cluster_id"] is not None


def test_promo_audience_by_column_name_works_on_the_loyalty_model_too(client):
    """The same `audience: {column: value}` the Angular app sends for any schema, with upload spellings."""
    body = client.post("/generate-promo", json={**CAMPAIGN, "audience": {"Branch": "tampines", "sex": "F",
                                                                         "membership level": "gold"}}).get_json()
    assert body["persona_source"] == "audience" and set(body["audience_assumed"]) == {"date_joined"}
    fields = {f["name"]: f for f in client.get("/options").get_json()["audience_fields"]}
    assert fields["Loyalty Tier"]["values"] == ["Silver", "Gold", "Platinum"]
    assert "Tampines" in fields["Location"]["values"]


@pytest.mark.parametrize(("audience", "words"), [({"colour": "red"}, "not a column"),
                                                 ({"gender": "Robot"}, "use one of female")])
def test_promo_audience_that_cannot_be_placed_is_422_naming_the_fix(client, audience, words):
    response = client.post("/generate-promo", json={**CAMPAIGN, "audience": audience})
    assert response.status_code == 422 and words in response.get_json()["error"]["message"].lower()


def test_promo_with_cluster_id_uses_that_persona(client):
    cluster_id = client.get("/personas").get_json()["personas"][-1]["cluster_id"]
    body = client.post("/generate-promo", json={**CAMPAIGN, "cluster_id": cluster_id}).get_json()

    assert body["persona_source"] == "cluster_id"
    assert body["cluster_id"] == body["persona"]["cluster_id"] == cluster_id


def test_promo_with_neither_is_for_a_general_audience(client):
    body = client.post("/generate-promo", json=CAMPAIGN).get_json()

    assert body["persona_source"] == "general" and body["cluster_id"] is None
    assert body["persona"]["name"] == "General audience"


def test_promo_for_an_unknown_cluster_is_404_listing_valid_ids(client):
    assert_error(client.post("/generate-promo", json={**CAMPAIGN, "cluster_id": 9999}), 404, "not_found",
                 "valid ids", "GET /personas")


MARKER = "zq<b>echo-me</b>"


@pytest.mark.parametrize(("field", "value"), [
    ("funnel_stage", MARKER), ("past_engagement", MARKER), ("platform", MARKER), ("tone", MARKER),
    ("prefer_output", MARKER), ("num_variants", MARKER), ("gender", MARKER), ("loyalty_tier", MARKER),
    ("date_joined", MARKER), ("cluster_id", MARKER),
])
def test_promo_with_a_bad_value_is_422_without_echoing_it(client, field, value):
    """The error names the field and the allowed values, never what was sent."""
    response = client.post("/generate-promo", json={**CAMPAIGN, field: value})

    body = assert_error(response, 422, "validation_error", field)
    assert "echo-me" not in response.get_data(as_text=True)
    assert field in {problem["field"] for problem in body["error"]["details"]}


@pytest.mark.parametrize(("payload", "fix"), [
    ({**CAMPAIGN, "objective": "x" * 301}, "300 characters"),
    ({**CAMPAIGN, "offer": "x" * 5000}, "300 characters"),
    ({**CAMPAIGN, "brand_name": "x" * 101}, "100 characters"),
    ({**CAMPAIGN, "objective": ""}, "objective"),
    ({**CAMPAIGN, "date_joined": "2999-01-01"}, "future"),
    ({**CAMPAIGN, "date_joined": "1900-01-01"}, "1980"),
    ({**CAMPAIGN, "join_month": 4}, "join_year together"),
    ({**CAMPAIGN, "colour": "red"}, "colour"),
    ({"objective": "Increase sales"}, "industry"),
], ids=["long-objective", "long-offer", "long-brand", "blank-objective", "future-date", "ancient-date",
        "month-alone", "unknown-field", "missing-fields"])
def test_promo_with_invalid_fields_is_422_naming_the_fix(client, payload, fix):
    assert_error(client.post("/generate-promo", json=payload), 422, "validation_error", fix)


@pytest.mark.parametrize("request_kwargs", [
    {"data": "objective=Increase sales", "content_type": "application/x-www-form-urlencoded"},
    {"data": "hello", "content_type": "text/plain"},
    {"data": "{not json", "content_type": "application/json"},
    {"data": "", "content_type": "application/json"},
    {"json": ["Increase sales"]},
    {"json": "Increase sales"},
], ids=["form", "text", "broken-json", "empty", "array", "string"])
@pytest.mark.parametrize("path", ["/generate-promo", "/generate-post"])
def test_generation_routes_need_a_json_object(client, path, request_kwargs):
    """Anything but a JSON object is a 4xx telling the caller to send JSON, never a 500."""
    response = client.post(path, **request_kwargs)

    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code, response.get_json()["error"]["code"], "application/json")


# ---------------------------------------------------------------------------------------------
# POST /generate-post
# ---------------------------------------------------------------------------------------------

def test_post_for_a_persona_by_cluster_id(client):
    body = client.post("/generate-post", json={"cluster_id": 0, **CAMPAIGN, "platform": "LinkedIn"}).get_json()

    assert body["status"] == "ok" and body["persona_source"] == "cluster_id" and body["cluster_id"] == 0
    assert body["persona"]["cluster_id"] == 0 and body["content"]["provider"] == "offline"


def test_post_by_cluster_id_needs_the_campaign_fields(client):
    body = assert_error(client.post("/generate-post", json={"cluster_id": 0}), 422, "validation_error",
                        "objective", "industry")
    assert body["error"]["details"]["missing"] == ["objective", "industry", "funnel_stage", "past_engagement"]


def test_post_for_a_segment_of_an_upload_reuses_its_campaign(client):
    """upload_id + cluster_id regenerates that segment's content; only the new preferences are needed."""
    uploaded = upload(client, "customers.csv", objective="Promote an event").get_json()
    segment = uploaded["segments"][0]
    response = client.post("/generate-post", json={"upload_id": uploaded["upload_id"],
                                                   "cluster_id": segment["cluster_id"], "tone": "Playful"})

    body = response.get_json()
    assert response.status_code == 200 and body["persona_source"] == "upload"
    assert body["upload_id"] == uploaded["upload_id"] and body["model_version"] == uploaded["model_version"]
    assert body["persona"]["name"] == segment["persona"]["name"]


@pytest.mark.parametrize(("payload", "fix"), [
    ({"upload_id": "0" * 32, "cluster_id": 0}, "no upload"),
    ({"cluster_id": 9999, **CAMPAIGN}, "valid ids"),
])
def test_post_for_unknown_upload_or_segment_is_404(client, payload, fix):
    assert_error(client.post("/generate-post", json=payload), 404, "not_found", fix)


def test_post_for_a_segment_the_upload_does_not_have_is_404_listing_its_segments(client):
    uploaded = upload(client, "customers.csv").get_json()
    response = client.post("/generate-post", json={"upload_id": uploaded["upload_id"], "cluster_id": 9999})

    assert_error(response, 404, "not_found", str([s["cluster_id"] for s in uploaded["segments"]]))


# ---------------------------------------------------------------------------------------------
# Personas, options, health, segment map
# ---------------------------------------------------------------------------------------------

def test_personas_list_every_segment(client, live_version):
    body = client.get("/personas").get_json()

    ids = [p["cluster_id"] for p in body["personas"]]
    assert body["model_version"] == live_version and ids == sorted(ids) and len(ids) >= 2
    assert len(ids) == client.get("/health").get_json()["persona_count"]
    assert all(p["name"] and p["summary"] for p in body["personas"])


def test_one_persona_with_its_profile(client):
    body = client.get("/personas/1").get_json()

    assert body["persona"]["cluster_id"] == 1 and body["profile"]["cluster_id"] == 1


@pytest.mark.parametrize("path", ["/personas/9999", "/personas/-1", "/personas/abc"])
def test_unknown_persona_is_404(client, path):
    assert_error(client.get(path), 404, "not_found")


def test_options_lists_every_dropdown(client, live_version):
    body = client.get("/options").get_json()

    assert body["model_version"] == live_version
    assert "Tampines" in body["locations"] and body["loyalty_tiers"] == ["Silver", "Gold", "Platinum"]
    assert "TikTok" in body["platforms"] and body["outputs"] == ["text", "image", "both"]
    assert {"genders", "objectives", "industries", "funnel_stages", "past_engagement", "tones"} <= set(body)
    assert len(body["segments"]) == len(client.get("/personas").get_json()["personas"])


def test_health_reports_the_live_model(client, live_version):
    response = client.get("/health")

    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert body["model_version"] == live_version and body["content_provider"] == "offline"


def test_segment_map_is_a_png(client):
    response = client.get("/model/segments.png")

    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.data.startswith(b"\x89PNG\r\n\x1a\n")


def test_without_a_model_health_is_503_with_the_reason_and_the_fix(no_model_client):
    response = no_model_client.get("/health")

    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "error" and body["model_version"] is None
    assert body["error"]["code"] == "model_unavailable" and "make train" in body["error"]["message"]


@pytest.mark.parametrize(("method", "path", "payload"), [
    ("get", "/personas", None), ("get", "/personas/0", None), ("get", "/model/segments.png", None),
    ("post", "/generate-promo", {**CAMPAIGN, "cluster_id": 0}),
    ("post", "/generate-promo", {**CAMPAIGN, "gender": "F"}),
    ("post", "/generate-post", {"cluster_id": 0, **CAMPAIGN}),
])
def test_without_a_model_model_routes_are_503_saying_how_to_train(no_model_client, method, path, payload):
    response = getattr(no_model_client, method)(path, json=payload)

    assert_error(response, 503, "model_unavailable", "make train")


def test_without_a_model_general_content_and_options_still_work(no_model_client):
    promo = no_model_client.post("/generate-promo", json=CAMPAIGN).get_json()
    options = no_model_client.get("/options").get_json()

    assert promo["status"] == "ok" and promo["persona_source"] == "general" and promo["model_version"] is None
    assert options["status"] == "ok" and options["locations"] == [] and options["platforms"]


def test_without_a_model_upload_is_503(no_model_client):
    assert_error(upload(no_model_client, "customers.csv"), 503, "model_unavailable", "make train")


# ---------------------------------------------------------------------------------------------
# Flask's own errors, the envelope, model_version everywhere
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "status", "code", "fix"), [
    ("get", "/no-such-page", 404, "not_found", "/docs"),
    ("get", "/generate-promo", 405, "method_not_allowed", "POST"),
    ("delete", "/personas", 405, "method_not_allowed", "GET"),
    ("put", "/upload-excel", 405, "method_not_allowed", "POST"),
])
def test_flask_routing_errors_use_the_envelope(client, live_version, method, path, status, code, fix):
    body = assert_error(getattr(client, method)(path), status, code, fix)
    assert body["model_version"] == live_version


def test_oversize_json_is_413_in_the_envelope(make_app):
    client = make_app(max_upload_mb=1).test_client()
    response = client.post("/generate-promo", data=b'{"objective": "' + b"x" * 1_100_000 + b'"}',
                           content_type="application/json")

    assert_error(response, 413, "payload_too_large", "MAX_UPLOAD_MB")


def test_unexpected_errors_are_500_in_the_envelope_without_internals(client, monkeypatch):
    """A bug answers 500 with a request id to quote, and no exception text or traceback."""
    import generate

    def broken(services):
        raise RuntimeError("secret internals at /srv/app.py line 12")

    monkeypatch.setattr(generate, "list_personas", broken)
    response = client.get("/personas", headers={"X-Request-ID": "req-abc123"})

    assert_error(response, 500, "internal_error", "req-abc123")
    assert response.headers["X-Request-ID"] == "req-abc123"
    assert "secret" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize(("method", "path", "payload"), [
    ("get", "/personas", None), ("get", "/personas/0", None), ("get", "/personas/9999", None),
    ("get", "/options", None), ("get", "/health", None), ("get", "/nowhere", None), ("get", "/generate-post", None),
    ("post", "/generate-promo", CAMPAIGN), ("post", "/generate-promo", {"tone": "Angry"}),
    ("post", "/generate-post", {"cluster_id": 0, **CAMPAIGN}), ("post", "/generate-post", {"cluster_id": -1}),
    ("post", "/upload-excel", None), ("get", f"/uploads/{'0' * 32}/segments.xlsx", None),
])
def test_every_json_response_carries_model_version(client, live_version, method, path, payload):
    response = getattr(client, method)(path, json=payload)

    assert response.is_json
    assert response.get_json()["model_version"] == live_version


def test_with_rate_limit_generation_gets_429_after_the_limit(make_app):
    """RATE_LIMIT_PER_MINUTE caps generation per client; read-only routes are not limited."""
    client = make_app(rate_limit_per_minute=2).test_client()
    statuses = [client.post("/generate-promo", json=CAMPAIGN).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    body = assert_error(client.post("/generate-post", json={"cluster_id": 0, **CAMPAIGN}), 429, "rate_limited",
                        "2 per minute", "retry in")
    assert 0 < body["error"]["details"]["retry_after_s"] <= 61
    assert client.get("/personas").status_code == 200
    assert make_app(rate_limit_per_minute=2).test_client().post("/generate-promo", json=CAMPAIGN).status_code == 200


# ---------------------------------------------------------------------------------------------
# CORS
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/generate-promo", "/upload-excel"])
def test_cors_preflight_passes_for_an_allowed_origin_only(make_app, path):
    client = make_app(allow_origins=["https://portal.example.com"]).test_client()
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Content-Type"}

    allowed = client.options(path, headers={"Origin": "https://portal.example.com", **preflight})
    other = client.options(path, headers={"Origin": "https://evil.example.com", **preflight})

    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://portal.example.com"
    assert set(allowed.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "OPTIONS"}
    assert not [h for h in other.headers.keys() if h.lower().startswith("access-control-")]


def test_cors_headers_on_simple_requests_follow_the_allow_list(client):
    allowed = client.get("/health", headers={"Origin": "http://localhost:4200"})
    other = client.get("/health", headers={"Origin": "https://evil.example.com"})

    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:4200"
    assert "Access-Control-Allow-Origin" not in other.headers


# ---------------------------------------------------------------------------------------------
# OpenAPI and docs
# ---------------------------------------------------------------------------------------------

def test_openapi_documents_every_route(app, client):
    """Every API route is in /openapi.json with its body, multipart file field and error envelope."""
    spec = client.get("/openapi.json").get_json()

    routes = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule) for rule in app.url_map.iter_rules()
              if not rule.rule.startswith(("/docs", "/static", "/openapi.json"))}
    assert spec["openapi"].startswith("3.") and routes == set(spec["paths"])
    schemas = spec["components"]["schemas"]
    upload_op = spec["paths"]["/upload-excel"]["post"]
    form = upload_op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].split("/")[-1]
    file_field = schemas[form]["properties"]["file"]
    assert (file_field["type"], file_field["format"]) == ("string", "binary") and "file" in schemas[form]["required"]
    assert {"platform", "tone", "prefer_output", "num_variants", "objective"} <= set(schemas[form]["properties"])
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            assert {"200", "422", "404"} <= set(operation["responses"]) or path.startswith("/admin"), (method, path)
    assert "model_version" in schemas["ErrorEnvelope"]["properties"]


def test_docs_serve_swagger_ui_without_any_cdn(client):
    """The interactive docs work offline: the page and its assets come from this server."""
    page = client.get("/docs", follow_redirects=True)
    html = page.get_data(as_text=True)

    assert page.status_code == 200 and "swagger-ui" in html
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)
    assert not re.search(r"cdn|unpkg|jsdelivr|googleapis", html, re.IGNORECASE)
    base = page.request.path.rsplit("/", 1)[0] + "/"
    assets = re.findall(r"(?:src|href)=\"([^\"]+\.(?:js|css))\"", html)
    assert assets and all(client.get(base + asset).status_code == 200 for asset in assets)


# ---------------------------------------------------------------------------------------------
# Content providers: offline without a key; no personal data to the LLM with one
# ---------------------------------------------------------------------------------------------

def test_without_a_key_every_content_says_offline(client):
    uploaded = upload(client, "customers.csv").get_json()
    contents = [s["content"] for s in uploaded["segments"]]
    contents.append(client.post("/generate-promo", json=CAMPAIGN).get_json()["content"])
    contents.append(client.post("/generate-post", json={"cluster_id": 0, **CAMPAIGN}).get_json()["content"])
    contents.append(client.post("/generate-post", json={"upload_id": uploaded["upload_id"],
                                                        "cluster_id": uploaded["segments"][0]["cluster_id"]})
                    .get_json()["content"])

    assert [c["provider"] for c in contents] == ["offline"] * len(contents)
    assert client.get("/health").get_json()["content_provider"] == "offline"


def test_upload_sends_no_personal_data_to_the_llm(make_app, llm_server):
    """With a real provider, prompts carry personas and campaign only: no name, email, phone, id or note."""
    client = make_app(openai_api_key="sk-test", openai_base_url=llm_server.base_url, openai_model="gpt-test",
                      openai_timeout_s=5.0, openai_max_retries=0, cache_ttl_s=0).test_client()
    body = upload(client, "api_pii_accepted.xlsx").get_json()

    assert body["status"] == "ok" and body["segments"][0]["content"]["provider"] == "openai"
    calls = llm_server.calls()
    assert calls
    sent = "\n".join(call.raw for call in llm_server.requests).lower()
    for value in API_PII_VALUES:
        assert value.lower() not in sent, value


def test_a_429_carries_retry_after_and_the_rate_limit_headers(make_app):
    client = make_app(rate_limit_per_minute=1).test_client()
    first = client.post("/generate-promo", json=CAMPAIGN)
    refused = client.post("/generate-promo", json=CAMPAIGN)

    assert first.status_code == 200 and first.headers["X-RateLimit-Limit"] == "1"
    assert first.headers["X-RateLimit-Remaining"] == "0"
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.get_json()["error"]["details"]["retry_after_s"] == int(refused.headers["Retry-After"])
    assert client.get("/health").headers.get("X-RateLimit-Limit") is None  # read-only routes are not limited


def test_route_groups_have_their_own_limits(make_app):
    """Generation and upload count separately; RATE_LIMIT_UPLOAD_PER_MINUTE=0 leaves uploads unlimited."""
    client = make_app(rate_limit_per_minute=1, rate_limit_upload_per_minute=0).test_client()
    assert client.post("/generate-promo", json=CAMPAIGN).status_code == 200
    assert client.post("/generate-promo", json=CAMPAIGN).status_code == 429
    uploads = [client.post("/upload-excel", data={}, content_type="multipart/form-data").status_code
               for _ in range(3)]
    assert uploads == [422, 422, 422]


@pytest.mark.parametrize(("trusted_proxies", "second_client_limited"), [(0, True), (1, False)])
def test_x_forwarded_for_changes_the_client_only_behind_a_trusted_proxy(make_app, trusted_proxies,
                                                                          second_client_limited):
    client = make_app(rate_limit_per_minute=1, trusted_proxies=trusted_proxies).test_client()
    assert client.post("/generate-promo", json=CAMPAIGN, headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 200
    other = client.post("/generate-promo", json=CAMPAIGN, headers={"X-Forwarded-For": "198.51.100.9"})
    assert (other.status_code == 429) is second_client_limited


def test_request_log_names_the_client_a_trusted_proxy_vouches_for(make_app):
    import logging

    client = make_app(trusted_proxies=1, log_level="INFO").test_client()
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append
    logging.getLogger("portal.requests").addHandler(handler)
    try:
        client.get("/health", headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.9"})
    finally:
        logging.getLogger("portal.requests").removeHandler(handler)
    assert [r.client for r in seen] == ["198.51.100.9"]


@real_file
def test_a_table_of_other_columns_on_the_loyalty_model_says_how_to_train_on_it(client):
    """A marketer's own list (the mall customers) on the bundled model: the 422 names the missing columns
    and the command that segments the file by its own columns."""

    response = upload(client, data=(DATASETS / "mall_customers.csv").read_bytes(), filename="mall_customers.csv")
    error = response.get_json()["error"]
    assert response.status_code == 422 and error["code"] == "missing_columns"
    assert "Date Joined" in error["message"] and "flask --app app train --data" in error["message"]
    assert error["details"]["train_command"] == "flask --app app train --data FILE"
    assert error["details"]["missing"][0]["column"] == "Date Joined"
