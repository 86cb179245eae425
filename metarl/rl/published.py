"""The MAML paper's published meta-RL numbers (docs/protocol.md), drawn next to our curves."""

from __future__ import annotations

#: MAML's published mean returns after 0..3 steps (docs/protocol.md; navigation also step 4).
PUBLISHED_MAML = {
    "navigation_2d": [-40.4, -11.7, -3.3, -3.2, -3.35],
    "cheetah_vel": [-129.5, -78.6, -66.6, -60.8],
    "cheetah_dir": [-50.7, 293.2, 313.5, 315.7],
    "ant_vel": [30.6, 96.7, 100.1, 101.4],
    "ant_dir": [8.7, 499.2, 500.7, 499.1],
}
#: The oracle's published mean return (docs/protocol.md).
PUBLISHED_ORACLE = {"navigation_2d": -2.29, "cheetah_vel": -54.5, "cheetah_dir": 442.7,
                    "ant_vel": 107.9, "ant_dir": 524.8}


def published_curves(env: str, steps: int, *, with_oracle: bool) -> dict[str, list[float]]:
    """The paper's MAML curve (and, ``with_oracle``, its flat oracle line) for ``env`` over
    0..steps, where it was published: the figure's dashed references."""
    references = {}
    if env in PUBLISHED_MAML:
        references["MAML (paper)"] = PUBLISHED_MAML[env][:steps + 1]
    if with_oracle and env in PUBLISHED_ORACLE:
        references["oracle (paper)"] = [PUBLISHED_ORACLE[env]] * (steps + 1)
    return references
