"""Evaluation: what a model is trained to do (`tasks`), its metrics (`metrics`), evaluating a
model on a dataset (`evaluate`) and the mean-spectrum baseline it must beat (`baseline`)."""
