"""The bundled-data generator: deterministic, realistic values, answers kept apart."""

from __future__ import annotations

import pandas as pd
import pytest

from portal.segmentation.geography import REGION_OF_AREA
from portal.segmentation.sample_data import STRUCTURES, generate_customers
from portal.settings import SAMPLE_DATA_FILE


@pytest.mark.parametrize("structure", sorted(STRUCTURES))
def test_every_location_is_a_whole_planning_area_name(structure):
    customers, answers = generate_customers(rows=3000, seed=3, structure=structure)
    assert set(customers["Location"]) <= set(REGION_OF_AREA)
    assert answers["Customer ID"].tolist() == customers["Customer ID"].tolist()
    assert answers["true_group"].nunique() == len(STRUCTURES[structure][0])


def test_the_same_seed_gives_the_same_customers():
    first, _ = generate_customers(rows=500, seed=9)
    second, _ = generate_customers(rows=500, seed=9)
    pd.testing.assert_frame_equal(first, second)


def test_the_bundled_sample_is_what_the_generator_writes():
    bundled = pd.read_excel(SAMPLE_DATA_FILE, engine="calamine")
    generated, _ = generate_customers(rows=5000, seed=42)
    assert bundled["Location"].tolist() == generated["Location"].tolist()
    assert "true_group" not in bundled.columns
