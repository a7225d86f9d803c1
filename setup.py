"""Package discovery: ``segzero_env`` as is, and the ``agents/`` folder installed as ``segzero_agents``.

The bare name ``agents`` belongs to another popular distribution, so the bundled agents are
importable only as ``segzero_agents``.
"""

from setuptools import find_packages, setup

agent_packages = ["segzero_agents"] + [f"segzero_agents.{p}" for p in find_packages(where="agents")]
setup(
    packages=find_packages(include=["segzero_env", "segzero_env.*"]) + agent_packages,
    package_dir={"segzero_agents": "agents"},
)
