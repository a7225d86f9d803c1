"""segzero-env: reasoning segmentation as a Gymnasium environment.

Importing the package registers the environment ids and imports no heavy library (no torch):

>>> import gymnasium as gym
>>> import segzero_env
>>> "ReasonSegShapes-v0" in gym.registry
True
"""

from segzero_env.registration import register_envs
from segzero_env.trust import allow_code

__version__ = "0.1.0"

register_envs()

__all__ = ["__version__", "allow_code", "register_envs"]
