"""``EncodeQuery``: the text query turned into a fixed-size array a vector learner can take.

Three encodings, all built from one tokenizer (:func:`tokenize`: lower-case runs of letters and
digits, so ``"The RED square."`` gives ``["the", "red", "square"]``):

- ``"bag-of-words"``: ``Box(0, 1, (V + 1,), float32)``, a multi-hot vector over a vocabulary of
  ``V`` words built from the dataset's queries; the last slot flags words outside the vocabulary.
- ``"hashed"``: ``Box(0, 1, (dim,), float32)``, a multi-hot vector of CRC32 word hashes modulo
  ``dim``. Needs no vocabulary, so it works for any query; unrelated words may share a slot.
- ``"token-ids"``: ``MultiDiscrete([V + 2] * max_tokens)``, the first ``max_tokens`` words as
  ids (``0`` padding, ``1`` unknown word, ``2..`` the vocabulary in sorted order). Stable-Baselines3
  one-hot encodes it, so keep the vocabulary small.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENCODINGS = ("bag-of-words", "hashed", "token-ids")

_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-case words (runs of ASCII letters and digits).

    >>> tokenize("Find the RED square, left of 2 circles.")
    ['find', 'the', 'red', 'square', 'left', 'of', '2', 'circles']
    """
    return _WORD.findall(text.lower())


def build_vocabulary(queries: Iterable[str], min_count: int = 1) -> list[str]:
    """Sorted words seen at least ``min_count`` times in ``queries``.

    >>> build_vocabulary(["the red square", "the blue circle", "the red circle"], min_count=2)
    ['circle', 'red', 'the']
    """
    counts: dict[str, int] = {}
    for query in queries:
        for word in tokenize(query):
            counts[word] = counts.get(word, 0) + 1
    return sorted(word for word, count in counts.items() if count >= min_count)


def dataset_queries(dataset: Any, max_samples: int | None = 1000) -> list[str]:
    """Return a dataset's queries: its ``queries`` attribute if any, else those of the first ``max_samples`` samples.

    Decoding a sample may render or read its image, hence the cap; ``None`` reads every sample.
    """
    queries = getattr(dataset, "queries", None)
    if queries is not None:
        return [str(q) for q in queries]
    count = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    return [dataset[i].query for i in range(count)]


def _hash_slot(word: str, dim: int) -> int:
    # CRC32, not hash(): Python salts str hashes per process, which would change the encoding between runs.
    return zlib.crc32(word.encode("utf-8")) % dim


class EncodeQuery(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace the ``query`` text of a dict observation with a fixed-size numeric encoding.

    See the module docstring for the three encodings and their spaces. With ``"bag-of-words"`` or
    ``"token-ids"`` and no ``vocabulary`` given, the vocabulary is built from the wrapped env's
    dataset (``env.unwrapped.dataset``, first ``max_samples`` queries). Envs on other splits build
    their own, possibly different, vocabulary: give an evaluation env the training env's words
    (``vocabulary=train_env.get_wrapper_attr("vocabulary")``) so both encode a query alike. The raw
    query stays in ``info["query"]`` as the env returns it.

    Example:
        >>> import gymnasium as gym
        >>> import segzero_env
        >>> from segzero_env.wrappers import EncodeQuery
        >>> base = gym.make("ReasonSegShapes-v0", image_size=64, segmenter="box")
        >>> env = EncodeQuery(base, encoding="hashed", dim=32)
        >>> env.observation_space["query"]
        Box(0.0, 1.0, (32,), float32)
        >>> obs, info = env.reset(seed=0)
        >>> bool(obs["query"].sum() >= 1), env.encode_query("red red red").sum()
        (True, np.float32(1.0))

    Args:
        env: Env with a ``Dict`` observation holding a text key.
        encoding: ``"bag-of-words"``, ``"hashed"`` or ``"token-ids"``.
        vocabulary: Words for ``"bag-of-words"`` / ``"token-ids"`` (built from the dataset if ``None``).
        dim: Vector size for ``"hashed"``.
        max_tokens: Sequence length for ``"token-ids"`` (longer queries are cut, shorter padded).
        max_samples: Samples read to build the vocabulary (``None``: all).
        key: Observation key holding the query.
    """

    def __init__(
        self,
        env: gym.Env,
        encoding: str = "bag-of-words",
        vocabulary: Sequence[str] | None = None,
        dim: int = 256,
        max_tokens: int = 16,
        max_samples: int | None = 1000,
        key: str = "query",
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        if not isinstance(env.observation_space, spaces.Dict) or key not in env.observation_space.spaces:
            raise ValueError(f"EncodeQuery needs a Dict observation with a {key!r} key, got {env.observation_space}")
        if dim < 1 or max_tokens < 1:
            raise ValueError(f"dim and max_tokens must be >= 1, got dim={dim}, max_tokens={max_tokens}")
        if encoding != "hashed" and vocabulary is None:
            dataset = getattr(env.unwrapped, "dataset", None)
            if dataset is None:
                raise ValueError(
                    f"encoding={encoding!r} needs a vocabulary and the env exposes no dataset to build it from; "
                    "pass vocabulary=[...] or use encoding='hashed'"
                )
            vocabulary = build_vocabulary(dataset_queries(dataset, max_samples))
        gym.utils.RecordConstructorArgs.__init__(
            self, encoding=encoding, vocabulary=vocabulary, dim=dim, max_tokens=max_tokens, key=key
        )
        gym.ObservationWrapper.__init__(self, env)
        self.encoding = encoding
        self.key = key
        self.dim = dim
        self.max_tokens = max_tokens
        self.vocabulary = sorted(set(vocabulary or ()))
        self._index = {word: i for i, word in enumerate(self.vocabulary)}
        query_space: spaces.Space
        if encoding == "bag-of-words":
            query_space = spaces.Box(0.0, 1.0, (len(self.vocabulary) + 1,), dtype=np.float32)
        elif encoding == "hashed":
            query_space = spaces.Box(0.0, 1.0, (dim,), dtype=np.float32)
        else:
            query_space = spaces.MultiDiscrete(np.full(max_tokens, len(self.vocabulary) + 2, dtype=np.int64))
        self.observation_space = spaces.Dict({**env.observation_space.spaces, key: query_space})

    def encode_query(self, query: str) -> np.ndarray:
        """Return the encoding of one query string."""
        words = tokenize(query)
        if self.encoding == "token-ids":
            ids = np.zeros(self.max_tokens, dtype=np.int64)
            for position, word in enumerate(words[: self.max_tokens]):
                ids[position] = self._index[word] + 2 if word in self._index else 1
            return ids
        if self.encoding == "hashed":
            vector = np.zeros(self.dim, dtype=np.float32)
            for word in words:
                vector[_hash_slot(word, self.dim)] = 1.0
            return vector
        vector = np.zeros(len(self.vocabulary) + 1, dtype=np.float32)
        for word in words:
            vector[self._index.get(word, len(self.vocabulary))] = 1.0
        return vector

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Swap the query text for its encoding."""
        return {**observation, self.key: self.encode_query(str(observation[self.key]))}
