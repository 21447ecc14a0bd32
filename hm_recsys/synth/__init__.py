"""Synthetic H&M world: a generator with learnable hidden structure, and a profiler for any dataset
in the Kaggle schema (synthetic or real) that compares its statistics with the real figures."""

from hm_recsys.synth.profile import format_profile, profile_dataset
from hm_recsys.synth.scales import SCALES, Scale
from hm_recsys.synth.world import generate_world

__all__ = ["SCALES", "Scale", "format_profile", "generate_world", "profile_dataset"]
