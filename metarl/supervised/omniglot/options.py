"""The Omniglot options every method's config shares (no torch: the command line reads them
before any model is built)."""

from __future__ import annotations

from dataclasses import dataclass

from metarl.config import option, seed_option


@dataclass
class OmniglotOptions:
    """The data and episode options of every method's Omniglot config (MAML's and the episodic
    methods' alike): where the images are, the character split and the episodes' ways."""

    data_dir: str = option("data/omniglot", "folder holding the Omniglot zips "
                           "(images_background.zip and images_evaluation.zip, or the two small "
                           "background subsets)")
    download: bool = option(False, "download the full zips into --data-dir if missing")
    cache_dir: str = option("", "folder of the preprocessed-array cache; none: "
                            "~/.cache/metarl/omniglot")
    ways: int = option(5, "N: classes per episode (at least 2: an episode compares classes)",
                       minimum=2, exclusive_minimum=False)
    rotations: bool = option(True, "add each character's 90/180/270-degree rotations as classes")
    split_seed: int = seed_option(0, "seed of the class-disjoint character split")
    test_fraction: float = option(0.25, "fraction of characters held out for testing",
                                  minimum=0.0, maximum=1.0, exclusive_maximum=True)
