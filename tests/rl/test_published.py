"""The paper's published numbers, as the evaluation's figure draws them."""

from metarl.rl.published import PUBLISHED_MAML, PUBLISHED_ORACLE, published_curves


def test_published_curves_cut_to_the_steps_and_draw_the_oracle_flat():
    curves = published_curves("navigation_2d", 2, with_oracle=True)
    assert curves == {"MAML (paper)": [-40.4, -11.7, -3.3], "oracle (paper)": [-2.29] * 3}
    assert published_curves("cheetah_vel", 1, with_oracle=False) == {
        "MAML (paper)": [-129.5, -78.6]}


def test_a_family_without_published_numbers_has_no_references():
    assert "ant_goal" not in PUBLISHED_MAML and "ant_goal" not in PUBLISHED_ORACLE
    assert published_curves("ant_goal", 3, with_oracle=True) == {}
