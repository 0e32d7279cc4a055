"""Profiling: each step broken into components (time, FLOPs, memory), and its cost against
clip length."""

from passt.profiling.breakdown import ComponentCost, StepProfile, profile_step
from passt.profiling.components import COMPONENTS, component_of
from passt.profiling.run import profile_scaling, profile_variants
from passt.profiling.scaling import CLIP_SECONDS, VARIANTS, ScalingPoint

__all__ = [
    "CLIP_SECONDS",
    "COMPONENTS",
    "VARIANTS",
    "ComponentCost",
    "ScalingPoint",
    "StepProfile",
    "component_of",
    "profile_scaling",
    "profile_step",
    "profile_variants",
]
