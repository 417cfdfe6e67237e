"""core.defaults: the one rule for a page's default backbone group and a group's default metric (issue 28).

    .venv/bin/python -m pytest -q tests/test_defaults.py
"""
from core.config import DEFAULT_BACKBONE
from core.defaults import default_group, default_metric, validated

SCORES = [{"metric": "zs", "mean_rho": 0.35}, {"metric": "e_tok", "mean_rho": 0.32}, {"metric": "e_avg", "mean_rho": 0.2},
          {"metric": "euclid", "mean_rho": -0.1}]


def test_the_default_group_stays_on_the_bundled_backbone_when_a_bigger_folder_is_opened():
    groups = {"t5-small": list(range(34)), DEFAULT_BACKBONE: list(range(11)), "roberta-base": list(range(34))}
    assert default_group(groups) == DEFAULT_BACKBONE
    del groups[DEFAULT_BACKBONE]
    assert default_group(groups) == "roberta-base"  # largest, ties by name
    assert default_group({}) is None


def test_a_measured_group_opens_on_measured():
    assert default_metric(True, lambda m: True, SCORES) == ("measured", "")


def test_no_runs_the_best_validated_metric_that_can_be_shown_and_its_rho():
    m, why = default_metric(False, lambda m: True, SCORES)
    assert m == "zs" and "ρ 0.35" in why and "best-validated" in why
    m, why = default_metric(False, lambda m: m != "zs", SCORES)  # zs needs a backbone not here
    assert m == "e_tok" and "ρ 0.32" in why


def test_none_validated_says_so():
    for scores in ([], [{"metric": "euclid", "mean_rho": -0.1}]):
        m, why = default_metric(False, lambda m: True, scores)
        assert m == "e_avg" and "no metric is validated for this group" in why
    assert [s["metric"] for s in validated(SCORES)] == ["zs", "e_tok", "e_avg"]
