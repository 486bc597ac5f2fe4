"""What one image file is, decoded once: its size as training sees it, its EXIF orientation, whether it
decodes to the end, and its perceptual hash.

**Orientation rule**: the size that counts is the *displayed* one, EXIF orientation applied, because that is
what training decodes: mmdet's ``LoadImageFromFile`` reads with ``mmcv.imfrombytes(flag="color")``, i.e.
``cv2.IMREAD_COLOR``, which applies the EXIF orientation (only ``color_ignore_orientation`` would not), and
mmcv's Pillow backend calls ``ImageOps.exif_transpose`` for the same flag. Annotations must therefore match
the displayed frame; an image whose annotations match the stored frame is refused with both sizes named.

**Decode to the end**: a JPEG with an intact header and cut data opens fine and OpenCV decodes it with a
warning and grey rows, so the header alone proves nothing. Every image is decoded once here; for a JPEG in
Pillow's draft mode (the DCT scaled down 1/2..1/8, enough for a 32x32 perceptual hash), which still reads and
entropy-decodes every byte, so a cut or corrupt stream fails just the same.

Messages are for the person who made the dataset: no Python reprs, no paths of this machine.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from services.trainer_worker.domain.coco import ImageRecord
from services.trainer_worker.domain.problems import Problem, ProblemLog

EXIF_ORIENTATION = 0x0112
TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height
HASH_DRAFT_SIDE = 64  # the DCT hash works on 32x32; decode at least twice that
_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


@dataclass(frozen=True)
class ImageFacts:
    size: tuple[int, int] | None = None  # (width, height) as displayed and trained on
    stored_size: tuple[int, int] | None = None  # (width, height) as stored, before the EXIF orientation
    orientation: int = 1  # EXIF orientation tag, 1 = as stored
    phash: int | None = None  # 64-bit DCT perceptual hash of the displayed image
    error: str = ""  # why the file is not a usable image ("" = it is)

    @property
    def rotated(self) -> bool:
        return self.orientation != 1


@dataclass(frozen=True)
class FileFacts:
    """One referenced file as read: its bytes' sha256 and what decoding them found."""

    sha256: str = ""
    image: ImageFacts | None = None
    missing: bool = False
    error: str = ""  # the file could not be read at all


def report_image(
    image: ImageRecord, facts: FileFacts, prefix: str, problems: ProblemLog, where: str = "dataset directory"
) -> None:
    """Add the problem of one annotated image, if it has one, naming its file."""
    label = f"{prefix}image id {image.id}: file {image.file_name!r}"
    decoded = facts.image
    if facts.missing:
        problems.add(Problem.IMAGE_MISSING, f"{label} not found in the {where}", image.file_name)
    elif facts.error or decoded is None or decoded.error:
        reason = facts.error or (decoded.error if decoded else "") or "is not a readable image"
        problems.add(Problem.IMAGE_UNREADABLE, f"{label} {reason}", image.file_name)
    elif mismatch := size_mismatch(decoded, (image.width, image.height)):
        problems.add(Problem.IMAGE_SIZE_MISMATCH, f"{label} {mismatch}", image.file_name)


def inspect_image(data: bytes, *, perceptual_hash: bool = True) -> ImageFacts:
    """Decode ``data`` once; ``error`` says why it is not an image training can use."""
    if not data:
        return ImageFacts(error="is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return ImageFacts(error="is not a readable image (not a format the decoder recognises)")
    except Image.DecompressionBombError as exc:
        return ImageFacts(error=f"is too large to decode ({_clean(exc)})")
    except (OSError, SyntaxError, ValueError) as exc:
        return ImageFacts(error=f"is not a readable image ({_clean(exc)})")
    with image:
        try:
            orientation = _orientation(image)
            stored = image.size
            image.draft("L", (HASH_DRAFT_SIDE, HASH_DRAFT_SIDE))  # JPEG only; others decode in full
            image.load()
            digest = _phash(image, orientation) if perceptual_hash else None
        except Image.DecompressionBombError as exc:
            return ImageFacts(error=f"is too large to decode ({_clean(exc)})")
        except (OSError, SyntaxError, ValueError) as exc:
            return ImageFacts(error=f"is truncated or corrupt: it does not decode to the end ({_clean(exc)})")
    shown = (stored[1], stored[0]) if orientation in TRANSPOSED else stored
    return ImageFacts(shown, stored, orientation, digest)


def size_mismatch(facts: ImageFacts, annotated: tuple[int, int]) -> str:
    """Why the annotated (width, height) does not fit the image, or "" when it does."""
    if facts.size is None or facts.size == annotated:
        return ""
    w, h = facts.size
    aw, ah = annotated
    if facts.rotated and facts.stored_size == annotated:
        sw, sh = facts.stored_size
        return (
            f"is {w}x{h} pixels as displayed (EXIF orientation {facts.orientation} turns the stored "
            f"{sw}x{sh} frame, and training decodes it turned) but the annotations say {aw}x{ah}, the stored "
            "frame: "
            "annotate the displayed image, or save it without the EXIF orientation"
        )
    return f"is {w}x{h} pixels but the annotations say {aw}x{ah}"


def _orientation(image: Image.Image) -> int:
    if "exif" not in image.info and image.format in ("JPEG", "MPO"):
        return 1  # no EXIF block: nothing to parse (the parse costs as much as a small image's decode)
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block: the decoders ignore it too
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _phash(image: Image.Image, orientation: int) -> int:
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
    bits = imagehash.phash(image).hash.flatten()  # 64 booleans, in the order str(ImageHash) spells them
    return int.from_bytes(np.packbits(bits).tobytes(), "big")  # str() + int(_, 16) costs 10x more


def _clean(exc: BaseException) -> str:
    return _REPR.sub("the file", str(exc)).strip() or type(exc).__name__
