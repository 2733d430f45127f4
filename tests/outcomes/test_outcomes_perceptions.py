"""AIM / IAM / FIM: scale score = mean of 4 items, three scales kept apart. Tolerance 1e-6."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from knowdo.errors import ParameterError
from knowdo.outcomes import compute_perceptions, scale_scores

HAND = 1e-6


def make_perceptions() -> pd.DataFrame:
    # measure, provider, site, instrument, total, items 1-4
    rows = [
        ("m1", "a", "s1", "AIM", None, 4, 5, 4, 3),  # 16/4 = 4.00
        ("m2", "a", "s1", "IAM", None, 3, 3, 4, 4),  # 14/4 = 3.50
        ("m3", "a", "s1", "FIM", None, 5, 5, 5, 5),  # 20/4 = 5.00
        ("m4", "b", "s1", "AIM", None, 5, 5, 5, 4),  # 19/4 = 4.75
        ("m5", "c", "s2", "AIM", None, 2, 3, 3, 2),  # 10/4 = 2.50
        ("m6", "c", "s2", "IAM", 3.25, None, None, None, None),  # no items: recorded total 3.25
        ("m7", "d", "s3", "FIM", None, 4, 4, 4, 3),  # 15/4 = 3.75
        ("m8", "d", "s3", "PHQ-9", 7.0, 1, 1, 1, 1),  # not AIM/IAM/FIM: ignored
    ]
    frame = pd.DataFrame(
        rows,
        columns=["measure_id", "provider_id", "site_id", "instrument", "total", "item_1", "item_2", "item_3", "item_4"],
    )
    frame["date"] = pd.to_datetime(
        ["2024-01-10", "2024-01-10", "2024-01-10", "2024-02-10", "2024-02-12", "2024-02-12", "2024-03-01", "2024-03-01"]
    )
    frame["total"] = frame["total"].astype(float)
    return frame


SITES = pd.DataFrame(
    {
        "site_id": ["d1", "s1", "s2", "s3"],
        "name": None,
        "parent_id": [None, "d1", "d1", "d1"],
        "level": ["district", "facility", "facility", "facility"],
    }
)


def test_scale_score_is_the_mean_of_the_four_items() -> None:
    s = scale_scores(make_perceptions()).set_index("measure_id")
    assert s.loc["m1", "score"] == pytest.approx(4.0)
    assert s.loc["m4", "score"] == pytest.approx(4.75)
    assert s.loc["m6", "score"] == pytest.approx(3.25)
    assert s.loc["m6", "source"] == "total"
    assert "m8" not in s.index


def test_three_scales_are_summarised_separately_by_hand() -> None:
    p = compute_perceptions(make_perceptions(), sites=SITES)
    # AIM: 4.00, 4.75, 2.50 -> mean 3.75; deviations .25, 1, -1.25 -> SS 2.625, var 1.3125, sd 1.145644
    # se = 1.145644 / sqrt(3) = 0.661438; t(2) = 4.302653 -> (0.904063, 6.595937)
    assert p.value("AIM", "mean") == pytest.approx(3.75)
    assert p.value("AIM", "sd") == pytest.approx(1.145644, abs=HAND)
    assert p.value("AIM", "mean", column="denominator") == 3
    assert p.value("AIM", "mean", column="conf_low") == pytest.approx(0.904063, abs=HAND)
    assert p.value("AIM", "mean", column="conf_high") == pytest.approx(6.595937, abs=HAND)
    # IAM: 3.50, 3.25 -> 3.375; FIM: 5.00, 3.75 -> 4.375
    assert p.value("IAM", "mean") == pytest.approx(3.375)
    assert p.value("FIM", "mean") == pytest.approx(4.375)
    # never combined: only AIM, IAM and FIM rows, and no overall score across the scales
    assert set(p.table["outcome"]) == {"AIM", "IAM", "FIM"}
    pooled = np.mean([4.0, 4.75, 2.5, 3.5, 3.25, 5.0, 3.75])
    assert not np.isclose(p.table.loc[p.table["measure"] == "mean", "estimate"], pooled).any()


def test_informal_agree_share() -> None:
    p = compute_perceptions(make_perceptions(), sites=SITES)
    # AIM scores >= 4: 4.00 and 4.75 of 3 -> 2/3; IAM: none of 2; FIM: 5.00 of 2 -> 1/2
    assert p.value("AIM", "share_agree_informal") == pytest.approx(2 / 3)
    assert p.value("IAM", "share_agree_informal") == 0.0
    assert p.value("FIM", "share_agree_informal") == pytest.approx(0.5)
    assert "informal" in p.summary()


def test_groups_by_site_district_and_period() -> None:
    p = compute_perceptions(make_perceptions(), sites=SITES)
    # site s1 AIM: 4.00 and 4.75 -> 4.375
    assert p.value("AIM", "mean", group_type="site", group="s1") == pytest.approx(4.375)
    assert p.value("AIM", "mean", group_type="district", group="d1") == pytest.approx(3.75)
    # February AIM: 4.75 (m4) and 2.50 (m5) -> 3.625
    assert p.value("AIM", "mean", group_type="month", group="2024-02") == pytest.approx(3.625)
    assert set(p.table["stratum_dimension"]) == {"all"}


def test_item_out_of_range_is_rejected() -> None:
    bad = make_perceptions()
    bad.loc[0, "item_2"] = 6
    with pytest.raises(ParameterError, match="items must lie between 1 and 5"):
        compute_perceptions(bad)


def test_inputs_unchanged_and_serialisable() -> None:
    frame = make_perceptions()
    before = frame.copy(deep=True)
    p = compute_perceptions(frame, sites=SITES)
    pd.testing.assert_frame_equal(frame, before)
    json.dumps(p.to_dict(), allow_nan=False)
    assert p.plot().to_dict()
    assert p.plot("site").to_dict()
