"""Checks for numeric arguments: a wrong type or value is refused with a message naming the argument.

``int(840.5)``, ``int(True)`` and ``float("abc")`` either change the value silently or fail with a
message that names neither the argument nor the fix. These checks do neither.

>>> whole_number("image_size", 840.0, minimum=28)
840
>>> whole_number("image_size", 840.5, minimum=28)
Traceback (most recent call last):
...
ValueError: image_size must be a whole number, got 840.5
>>> finite_number("reward_weights['mask_iou']", "abc")
Traceback (most recent call last):
...
ValueError: reward_weights['mask_iou'] must be a finite number, got 'abc' (str)
>>> keyword_mapping("dataset_kwargs", "{level:3}", '{"level": 3}')
Traceback (most recent call last):
...
ValueError: dataset_kwargs must be a dict of keyword arguments such as {"level": 3}, got '{level:3}' (str)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping


def whole_number(
    name: str, value: object, *, minimum: int | None = None, maximum: int | None = None, why: str = ""
) -> int:
    """Return ``value`` as an ``int`` if it is a whole number in ``[minimum, maximum]``.

    Integral floats (``840.0``) are accepted; booleans, strings and fractions are refused.
    ``why`` is added to the out-of-range message (what the bounds protect).

    Raises:
        ValueError: Naming ``name``, the value, and the range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a whole number, got {value!r:.60} ({type(value).__name__})")
    if isinstance(value, numbers.Integral):
        number = int(value)
    else:
        as_float = float(value)
        if not as_float.is_integer():
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        number = int(as_float)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        low = "" if minimum is None else f"{minimum}"
        high = "" if maximum is None else f"{maximum}"
        span = f"between {low} and {high}" if low and high else (f"at least {low}" if low else f"at most {high}")
        raise ValueError(f"{name} must be {span}, got {number}" + (f" ({why})" if why else ""))
    return number


def finite_number(name: str, value: object) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number (booleans and strings refused).

    Raises:
        ValueError: Naming ``name`` and the value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number, got {value!r:.60} ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    return number


def keyword_mapping(name: str, value: object, example: str) -> None:
    """Refuse a ``value`` that is neither ``None`` nor a mapping of keyword arguments.

    Raises:
        ValueError: Naming ``name``, the value, and an ``example`` of a right one.
    """
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(
            f"{name} must be a dict of keyword arguments such as {example}, got {value!r:.60} ({type(value).__name__})"
        )
