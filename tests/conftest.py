"""Suite-wide fixtures."""

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_in_pytest_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Send Stable-Baselines3's logger folders to pytest's temporary directory.

    Every ``learn()`` without a log folder makes a new ``SB3-<time>`` folder in the system
    temporary directory and leaves it there; ``SB3_LOGDIR`` points them at a folder pytest prunes.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))
        yield
