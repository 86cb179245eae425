"""The episodic methods, one :class:`EpisodicMethod` each in :data:`METHODS`: their config
class and how their model is built from it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metarl.supervised.episodic import config as configs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodicMethod:
    """One episodic method (its name, family and paper: ``metarl.catalog.FEW_SHOT_METHODS``)."""

    #: Its config class (a ``configs.EpisodicConfig``).
    config: type
    #: The model of a config, an ``EpisodeModel`` (imported when built).
    build: Callable[[Any], Any]


def _protonet(config: configs.ProtoNetConfig):
    from metarl.supervised.episodic.protonet import ProtoNet

    return ProtoNet(config.ways, hidden=config.hidden)


def _matching(config: configs.MatchingConfig):
    from metarl.supervised.episodic.matching import MatchingNet

    if not config.fce and config.fce_steps != configs.FCE_STEPS:  # the presets leave fce off
        log.warning("warning: fce_steps=%d ignored: full-context embeddings are off (add --fce "
                    "to use them)", config.fce_steps)
    return MatchingNet(config.ways, hidden=config.hidden, fce=config.fce,
                       fce_steps=config.fce_steps)


def _relation(config: configs.RelationConfig):
    from metarl.supervised.episodic.relation import RelationNet

    return RelationNet(config.ways, hidden=config.hidden, relation_hidden=config.relation_hidden)


def _siamese(config: configs.SiameseConfig):
    from metarl.supervised.episodic.siamese import SiameseNet

    return SiameseNet(config.ways, hidden=config.hidden)


def _mann(config: configs.MANNConfig):
    from metarl.supervised.episodic.mann import MANN

    return MANN(config.ways, hidden=config.hidden, controller_size=config.controller_size,
                memory_rows=config.memory_rows, memory_width=config.memory_width,
                num_reads=config.num_reads, gamma=config.usage_decay,
                key_strength=config.key_strength)


METHODS: dict[str, EpisodicMethod] = {
    "protonet": EpisodicMethod(configs.ProtoNetConfig, _protonet),
    "matching": EpisodicMethod(configs.MatchingConfig, _matching),
    "relation": EpisodicMethod(configs.RelationConfig, _relation),
    "siamese": EpisodicMethod(configs.SiameseConfig, _siamese),
    "mann": EpisodicMethod(configs.MANNConfig, _mann),
}


def method_of(config: Any) -> str:
    """The name of the method whose config ``config`` is."""
    for name, method in METHODS.items():
        if type(config) is method.config:
            return name
    raise TypeError(f"not an episodic method's config: {type(config).__name__}")
