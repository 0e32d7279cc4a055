"""Sweeps: train every variant over seeds under one budget and collect the mAPs (`run`), the
``maps.csv`` they write and read (`maps`)."""

from passt.sweep.run import Budget, parse_seeds, run_sweep

__all__ = ["Budget", "parse_seeds", "run_sweep"]
