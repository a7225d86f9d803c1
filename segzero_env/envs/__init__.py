"""Environments: the single reasoning-segmentation env and its group vector env."""
