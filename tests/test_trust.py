"""No code from data: "module:attr" names are refused unless code is allowed, and never from a verl row."""

import json
import pickle

import pytest

import segzero_env.integrations.verl as verl_module
from segzero_env import allow_code
from segzero_env.cli import main as segzero_main
from segzero_env.datasets import load
from segzero_env.evaluation import evaluate
from segzero_env.policies import make_policy
from segzero_env.segmenters import make_segmenter
from segzero_env.segmenters.box import BoxSegmenter
from segzero_env.trust import ALLOW_CODE_ENV, CodeNotAllowedError, check_env_id, code_allowed

SHAPES_KWARGS = {"segmenter": "box", "split": "val", "image_size": 56, "dataset_kwargs": {"size": 4, "level": 0}}
BOX_BY_MODULE = "segzero_env.segmenters.box:BoxSegmenter"


@pytest.fixture(autouse=True)
def no_allow_code_env(monkeypatch):
    monkeypatch.delenv(ALLOW_CODE_ENV, raising=False)


def _touch(path):
    """A harmless shell command whose only effect is to create ``path``."""
    return f"touch {path}"


def test_verl_row_naming_os_system_is_refused_and_the_command_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    env_kwargs = {"segmenter": "os:system", "segmenter_kwargs": {"command": _touch(marker)}}
    # even with the opt-in set for the whole process: a row is data
    monkeypatch.setenv(ALLOW_CODE_ENV, "1")
    for extra_info in ({"env_kwargs": json.dumps(env_kwargs)}, {"env_kwargs": env_kwargs}):
        with pytest.raises(CodeNotAllowedError, match="segmenter 'os:system' is a 'module:attr' name"):
            verl_module.compute_score("segzero/x", "reply", "shapes-L0-train-000000", extra_info)
    assert not marker.exists()
    row = {"env_kwargs": json.dumps({"dataset": "os:system", "dataset_kwargs": {"command": _touch(marker)}})}
    with pytest.raises(CodeNotAllowedError, match="dataset 'os:system'"):
        verl_module.compute_score("segzero/x", "reply", "shapes-L0-train-000000", row)
    assert not marker.exists()


def test_verl_row_env_id_with_a_module_is_refused_before_the_module_is_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "rowmod_side_effect.py").write_text(f"open({str(marker)!r}, 'w').close()\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    extra_info = {"env_id": "rowmod_side_effect:ReasonSegShapes-v0", "env_kwargs": {"segmenter": "box"}}
    with pytest.raises(CodeNotAllowedError, match="imports module 'rowmod_side_effect'"):
        verl_module.compute_score("segzero/x", "reply", "shapes-L0-train-000000", extra_info)
    with pytest.raises(CodeNotAllowedError):
        evaluate("rowmod_side_effect:ReasonSegShapes-v0", SHAPES_KWARGS, "oracle", tmp_path / "out", progress=False)
    assert not marker.exists()
    assert check_env_id("segzero_env:ReasonSegShapes-v0") == "segzero_env:ReasonSegShapes-v0"


def test_cli_refuses_module_names_without_allow_code(tmp_path, capsys):
    marker = tmp_path / "ran"
    args = [
        "eval",
        "--env",
        "ReasonSegShapes-v0",
        "--env-kwargs",
        "split=val",
        "image_size=56",
        'dataset_kwargs={"size": 2, "level": 0}',
        "segmenter=os:system",
        f'segmenter_kwargs={{"command": "{_touch(marker)}"}}',
        "--policy",
        "oracle",
        "--no-progress",
    ]
    assert segzero_main([*args, "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "segmenter 'os:system' is a 'module:attr' name" in err and "--allow-code" in err
    policy_args = [
        "eval",
        "--env",
        "ReasonSegShapes-v0",
        "--env-kwargs",
        "split=val",
        "segmenter=box",
        "--policy",
        "os:system",
        "--policy-kwargs",
        f"command={_touch(marker)}",
        "--no-progress",
    ]
    assert segzero_main([*policy_args, "--out", str(tmp_path / "b")]) == 1
    assert "policy 'os:system'" in capsys.readouterr().err
    assert not marker.exists()


def test_cli_allow_code_and_the_env_var_opt_in(tmp_path, monkeypatch):
    args = [
        "eval",
        "--env",
        "ReasonSegShapes-v0",
        "--env-kwargs",
        "split=val",
        "image_size=56",
        'dataset_kwargs={"size": 2, "level": 0}',
        f"segmenter={BOX_BY_MODULE}",
        "--policy",
        "oracle",
        "--no-progress",
    ]
    assert segzero_main([*args, "--out", str(tmp_path / "refused")]) == 1
    assert segzero_main([*args, "--allow-code", "--out", str(tmp_path / "allowed")]) == 0
    assert not code_allowed()  # the flag does not outlive the command
    monkeypatch.setenv(ALLOW_CODE_ENV, "1")
    assert segzero_main([*args, "--out", str(tmp_path / "by_env")]) == 0


def test_python_callers_opt_in_by_context_or_by_passing_the_class(monkeypatch):
    with pytest.raises(CodeNotAllowedError, match="segmenter"):
        make_segmenter(BOX_BY_MODULE)
    with pytest.raises(CodeNotAllowedError, match="policy"):
        make_policy("segzero_env.policies.oracle:OraclePolicy")
    with pytest.raises(CodeNotAllowedError, match="dataset"):
        load("segzero_env.datasets.shapes:load_shapes", split="val", size=2)
    with allow_code():
        assert isinstance(make_segmenter(BOX_BY_MODULE), BoxSegmenter)
        assert len(load("segzero_env.datasets.shapes:load_shapes", split="val", size=2)) == 2
    assert isinstance(make_segmenter(BoxSegmenter), BoxSegmenter)
    assert isinstance(make_segmenter("box"), BoxSegmenter)  # registered names need no permission
    monkeypatch.setenv(ALLOW_CODE_ENV, "1")
    assert code_allowed()
    with allow_code(False):
        assert not code_allowed()
        with pytest.raises(CodeNotAllowedError):
            make_segmenter(BOX_BY_MODULE)


class _RunsOnLoad:
    """Unpickling this calls os.system (what a malicious refs file would do)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def test_a_refs_pickle_that_would_run_code_is_refused(tmp_path):
    from dataset_writers import make_ref, write_refer

    from segzero_env.datasets.errors import DatasetError

    refs = [make_ref(10, 1, 1, "val", ["the square"])]
    write_refer(tmp_path, "refcocog", "umd", refs, {1: (32, 32)}, [], write_images=False)
    assert load("refcocog", root=str(tmp_path), split="val").sample_ids == ["10_100"]  # plain refs load
    marker = tmp_path / "ran"
    (tmp_path / "refcocog" / "refs(umd).p").write_bytes(pickle.dumps([*refs, _RunsOnLoad(_touch(marker))]))
    with pytest.raises(DatasetError, match=r"asks for the Python object (posix|os|nt)\.system"):
        load("refcocog", root=str(tmp_path), split="val")
    assert not marker.exists()


def test_grpo_agent_refuses_module_segmenters_unless_allow_code(tmp_path):
    from segzero_agents.grpo import train
    from segzero_agents.presets import parse_args

    argv = ["--preset", "tiny-cpu", "--segmenter", BOX_BY_MODULE, "--warm-start-steps", "0", "--steps", "1",
            "--save-every", "0", "--log-replies-every", "0", "--eval-every", "0"]  # fmt: skip
    with pytest.raises(CodeNotAllowedError, match="--allow-code"):
        train(parse_args([*argv, "--output-dir", str(tmp_path / "refused")]))
    summary = train(parse_args([*argv, "--allow-code", "--output-dir", str(tmp_path / "allowed")]))
    assert summary["steps"] == 1 and not code_allowed()
