"""Reading image files safely: the pixel limit, checked from the file's header before any decoding.

A JPEG or PNG header states the image size, and a decoder allocates that much memory before it
finds out whether the data backs it: a 1 KB file claiming 20000 x 20000 pixels costs 1.2 GB on
every read. Every loader therefore reads the size from the header first and refuses images above
the pixel limit, :data:`MAX_IMAGE_PIXELS` (100 million pixels, 300 MB as RGB; the largest
ReasonSeg and COCO images hold under 30 million). Set ``SEGZERO_MAX_IMAGE_PIXELS`` to change it.

>>> max_image_pixels()
100000000
>>> try:
...     check_image_size("a.jpg", 20000, 20000)
... except DatasetError as error:
...     print(error.problem)
image header claims 20000x20000 (400,000,000 pixels), over the limit of 100,000,000
"""

from __future__ import annotations

import io
import os
import struct
import warnings

import cv2
import numpy as np

from segzero_env.datasets.errors import DatasetError

MAX_IMAGE_PIXELS = 100_000_000
"""Default largest ``width * height`` a loader decodes; ``SEGZERO_MAX_IMAGE_PIXELS`` overrides it."""

PIXEL_LIMIT_VARIABLE = "SEGZERO_MAX_IMAGE_PIXELS"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (every coding process); C4, C8 and CC are other segments.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def max_image_pixels() -> int:
    """The pixel limit in force: ``$SEGZERO_MAX_IMAGE_PIXELS`` when set, else :data:`MAX_IMAGE_PIXELS`.

    Raises:
        ValueError: The variable is set to something other than a positive whole number.
    """
    value = os.environ.get(PIXEL_LIMIT_VARIABLE)
    if value is None or not value.strip():
        return MAX_IMAGE_PIXELS
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ValueError(f"{PIXEL_LIMIT_VARIABLE}={value!r} is not a positive whole number; unset it or fix it")
    return limit


def check_image_size(path: str | os.PathLike[str], width: int, height: int, what: str = "image header claims") -> None:
    """Raise :class:`DatasetError` when ``width x height`` is over the pixel limit."""
    limit = max_image_pixels()
    if width * height > limit:
        raise DatasetError(
            path,
            f"{what} {width}x{height} ({width * height:,} pixels), over the limit of {limit:,}",
            f"check the file; if the image is genuine, raise {PIXEL_LIMIT_VARIABLE}",
        )


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_FRAME_MARKERS:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


def image_header_size(data: bytes) -> tuple[int, int] | None:
    """Read ``(width, height)`` from an encoded image's header without decoding any pixels.

    JPEG and PNG are read here; other formats through Pillow's lazy open. ``None`` when the
    header cannot be read (the decoder then reports the file).

    Raises:
        PIL.Image.DecompressionBombError: Pillow read a size over twice its own limit and would
            not say which.

    >>> png_start = bytes([0x89, *b"PNG", 13, 10, 26, 10, 0, 0, 0, 13, *b"IHDR", 0, 0, 1, 0, 0, 0, 0, 200])
    >>> image_header_size(png_start)
    (256, 200)
    """
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(_PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError:
        raise
    except Exception:  # noqa: BLE001 - not an image Pillow knows; the decoder reports it
        return None


def header_size_within_limit(path: str | os.PathLike[str], data: bytes) -> tuple[int, int] | None:
    """Read the header size of the image ``data`` (from ``path``) and refuse it when over the pixel limit.

    Returns:
        ``(width, height)``, or ``None`` when the header cannot be read.

    Raises:
        DatasetError: The header claims more pixels than the limit.
    """
    from PIL import Image

    try:
        size = image_header_size(data)
    except Image.DecompressionBombError as exc:
        raise DatasetError(path, f"image header claims too many pixels ({exc})", "check the file") from exc
    if size is not None:
        check_image_size(path, *size)
    return size


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to ``H x W x 3`` uint8 RGB, refusing it first if its header is over the pixel limit.

    OpenCV decodes it (applying the EXIF orientation), as the reference evaluation does, so masks
    drawn in that frame line up.

    Raises:
        DatasetError: The file is missing, empty, over the pixel limit, or not a decodable image.
    """
    path = os.fspath(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DatasetError(path, f"image cannot be read ({exc.strerror or exc})", "check the file exists") from exc
    if data.size == 0:
        raise DatasetError(path, "image file is empty", "re-download or remove it")
    size = header_size_within_limit(path, data[: 1 << 20].tobytes())
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise DatasetError(path, f"image does not decode (OpenCV: {reason})", "re-download or remove it") from exc
    if image is None:
        raise DatasetError(path, "image does not decode (corrupt or not an image)", "re-download or remove it")
    if size is None:  # a format whose header was not read: hold the decoded image to the same limit
        check_image_size(path, image.shape[1], image.shape[0], "image is")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
