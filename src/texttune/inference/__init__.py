"""Batched prediction and generation, shared by evaluate, predict and serve."""
