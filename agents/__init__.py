"""The bundled GRPO agent, installed as ``segzero_agents`` (never as bare ``agents``).

``segzero_agents.grpo`` is the trainer; ``segzero_agents.grpo_math`` holds its maths as pure
functions. See docs/agent.md.
"""
