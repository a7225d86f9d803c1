import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import segzero_env  # noqa: F401
from segzero_env.wrappers import EncodeQuery, build_vocabulary, tokenize
from segzero_env.wrappers.encode_query import dataset_queries

SMALL = {"image_size": 64, "segmenter": "box", "dataset_kwargs": {"level": 1, "size": 24}}


def base():
    return gym.make("ReasonSegShapes-v0", **SMALL)


def test_tokenize_folds_case_and_punctuation():
    assert tokenize("The RED-square, please!") == ["the", "red", "square", "please"]
    assert tokenize("") == []


def test_bag_of_words_vocabulary_comes_from_the_dataset():
    env = EncodeQuery(base())
    queries = dataset_queries(env.unwrapped.dataset)
    assert env.vocabulary == build_vocabulary(queries)
    assert env.observation_space["query"].shape == (len(env.vocabulary) + 1,)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    words = set(tokenize(info["query"]))
    hot = {env.vocabulary[i] for i in np.flatnonzero(obs["query"][:-1])}
    assert hot == words and obs["query"][-1] == 0.0
    assert env.encode_query("zebra")[-1] == 1.0 and env.encode_query("zebra")[:-1].sum() == 0


def test_queries_that_differ_encode_differently():
    env = EncodeQuery(base())
    seen = {}
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        seen[info["query"]] = obs["query"].tobytes()
    assert len(seen) > 1 and len(set(seen.values())) == len(seen)


def test_hashed_encoding_is_stable_across_processes():
    env = EncodeQuery(base(), encoding="hashed", dim=64)
    here = np.flatnonzero(env.encode_query("the large red circle")).tolist()
    code = (
        "import gymnasium as gym, segzero_env; from segzero_env.wrappers import EncodeQuery; import numpy as np;"
        "e = EncodeQuery(gym.make('ReasonSegShapes-v0', image_size=64, segmenter='box', dataset_kwargs={'size': 2}),"
        " encoding='hashed', dim=64); print(np.flatnonzero(e.encode_query('the large red circle')).tolist())"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert there == str(here)
    assert 1 <= len(here) <= 4


def test_token_ids_pad_cut_and_mark_unknown_words():
    env = EncodeQuery(base(), encoding="token-ids", vocabulary=["circle", "red", "the"], max_tokens=4)
    assert env.observation_space["query"] == gym.spaces.MultiDiscrete([5, 5, 5, 5])
    assert env.encode_query("the red zebra").tolist() == [4, 3, 1, 0]
    assert env.encode_query("the red circle the circle").tolist() == [4, 3, 2, 4]
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="encoding"):
        EncodeQuery(base(), encoding="bert")
    with pytest.raises(ValueError, match="'prompt' key"):
        EncodeQuery(base(), key="prompt")
