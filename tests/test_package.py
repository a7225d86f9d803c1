import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_agents_install_as_segzero_agents_not_bare_agents(tmp_path):
    code = (
        "import importlib.util, segzero_agents; "
        "spec = importlib.util.find_spec('agents'); "
        "print(segzero_agents.__name__, spec is None or 'segzero' not in str(spec.origin))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["segzero_agents", "True"]


def test_extras_cover_the_stack():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    flat = " ".join(" ".join(v) for v in extras.values())
    for package in ["sam2", "transformers", "stable-baselines3", "trl", "peft", "pytest", "hypothesis"]:
        assert package in flat, package
    assert "torch" not in " ".join(meta["dependencies"]), "the core install must stay torch-free"
    assert {"sam2", "hf", "agent", "trl", "sb3", "test", "all"} <= set(extras)


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ['SAM2_BUILD_CUDA=0 python -m pip install -e ".[all]"', "python -m pytest -q"]:
        assert command in readme and command in ci, command
