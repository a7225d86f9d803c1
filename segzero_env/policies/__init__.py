"""Policies: a batch of observations in, reply strings out; built by name or ``"module:Class"``.

Built in: ``random``, ``full-image``, ``oracle``, ``replay``, ``hf`` and ``openai``. Heavy
dependencies (torch, transformers) load only when the policy that needs them is built.
"""

from segzero_env.policies.base import Policy, PolicyBase, make_policy, policy_names, register_policy

__all__ = ["Policy", "PolicyBase", "make_policy", "policy_names", "register_policy"]
