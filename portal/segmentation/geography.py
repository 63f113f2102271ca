"""Singapore geography the features and personas use: planning areas (URA Master Plan 2019) by region."""

from __future__ import annotations

#: Singapore planning areas (URA Master Plan) by region.
PLANNING_AREAS_BY_REGION: dict[str, tuple[str, ...]] = {
    "Central": (
        "Bishan", "Bukit Merah", "Bukit Timah", "Downtown Core", "Geylang", "Kallang",
        "Marine Parade", "Newton", "Novena", "Orchard", "Outram", "Queenstown", "River Valley",
        "Rochor", "Singapore River", "Southern Islands", "Tanglin", "Toa Payoh", "Museum",
        "Marina East", "Marina South", "Straits View",
    ),
    "East": ("Bedok", "Changi", "Changi Bay", "Pasir Ris", "Paya Lebar", "Tampines"),
    "North": (
        "Central Water Catchment", "Lim Chu Kang", "Mandai", "Sembawang", "Simpang", "Sungei Kadut",
        "Woodlands", "Yishun",
    ),
    "North-East": (
        "Ang Mo Kio", "Hougang", "North-Eastern Islands", "Punggol", "Seletar", "Sengkang",
        "Serangoon",
    ),
    "West": (
        "Boon Lay", "Bukit Batok", "Bukit Panjang", "Choa Chu Kang", "Clementi", "Jurong East",
        "Jurong West", "Pioneer", "Tengah", "Tuas", "Western Islands", "Western Water Catchment",
    ),
}
REGION_OF_AREA: dict[str, str] = {
    area: region for region, areas in PLANNING_AREAS_BY_REGION.items() for area in areas
}

_REGION_LOOKUP = {area.lower(): region for area, region in REGION_OF_AREA.items()}


def region_of(location: str) -> str:
    """Singapore region of a planning area; 'Other' for places outside the URA list."""
    return _REGION_LOOKUP.get(str(location).lower(), "Other")
