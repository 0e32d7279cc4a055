"""``passt tradeoff``: what each reduction that acts at inference buys and costs, on one
checkpoint: tokens, FLOPs, inference speed and accuracy per setting, beside the unreduced
model. Patchout is free at inference (every patch is seen); token merging, pruning and a
larger patch are not, and this is where they are judged.

Every setting runs the checkpoint's own weights, loaded strictly (no reduction adds a
parameter), in eval mode without patchout. The eval clips' log-mels are computed once and
scored by every setting's model in the same pass (the models share the weights' memory).
Accuracy (mAP, or accuracy for single-label tasks) has a percentile bootstrap interval over
clips, and its change from the unreduced model a paired one (the same resampled clips).
Inference (frontend and model on a fixed batch) is timed in alternating rounds with the
unreduced model's, so that the machine's drift hits both: the speed-up is the median of the
per-round ratios, with its interval.
"""

from passt.tradeoff.config import DEFAULT_GRID, TradeoffConfig
from passt.tradeoff.grid import GridPoint, parse_grid
from passt.tradeoff.main import run
from passt.tradeoff.outputs import write_tradeoff
from passt.tradeoff.run import Row, run_tradeoff

__all__ = ["DEFAULT_GRID", "GridPoint", "Row", "TradeoffConfig", "parse_grid", "run",
           "run_tradeoff", "write_tradeoff"]
