"""``ravenctl runs create`` tiling options: ``--tiling auto|off`` and the explicit ``--tile-size``,
``--tile-overlap``, ``--min-box-visibility``.

``auto`` takes the tile size the dataset version's profile recommends (``DatasetProfile.
recommended_tile_size``); the server checks every value (INVALID_ARGUMENT naming the field), so nothing is
checked twice here beyond which flags go together.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.client import RavenClient
from common.proto.raven.v1 import types_pb2
from common.tiling import DEFAULT_MIN_BOX_VISIBILITY, DEFAULT_OVERLAP_SHARE, MAX_TILE, MIN_TILE
from services.cli.context import CliError, fail

HELP = {
    "tiling": "auto: train on tiles of the size the dataset version's profile recommends (small objects in "
    "large images), evaluated by sliced inference; off: no tiling (default unless --tile-size is given)",
    "tile_size": f"train on square tiles of this many pixels ({MIN_TILE}..{MAX_TILE}, at most the largest "
    "image side), evaluated by sliced inference",
    "tile_overlap": f"pixels neighbouring tiles share, less than the tile size (default "
    f"{DEFAULT_OVERLAP_SHARE:.0%} of it)",
    "min_box_visibility": "keep a box cut by a tile's edge when the tile shows at least this share of it, "
    f"(0, 1] (default {DEFAULT_MIN_BOX_VISIBILITY})",
}


@dataclass(frozen=True)
class TilingFlags:
    mode: str = ""  # "", "auto" or "off"
    tile_size: int | None = None
    overlap: int | None = None
    min_box_visibility: float | None = None

    def check(self, dataset_version: str) -> None:
        """Which flags go together; exits with status 2 saying why otherwise."""
        mode = self.mode.strip().lower()
        if mode not in ("", "auto", "off"):
            raise fail(f"--tiling must be auto or off, got {self.mode!r}")
        details = self.overlap is not None or self.min_box_visibility is not None
        if mode == "off" and (self.tile_size is not None or details):
            raise fail("--tiling off takes no --tile-size, --tile-overlap or --min-box-visibility")
        if mode == "auto" and self.tile_size is not None:
            raise fail("give either --tiling auto or --tile-size, not both")
        if mode == "auto" and not dataset_version:
            raise fail("--tiling auto needs --dataset-version: its profile recommends the tile size")


async def apply_tiling(client: RavenClient, hp: types_pb2.Hyperparameters, flags: TilingFlags,
                       dataset_version: str) -> None:  # fmt: skip
    """Sets ``hp.tiling`` from the flags (``auto``: from the version's profile); nothing when off."""
    mode = flags.mode.strip().lower()
    size = flags.tile_size
    if mode == "auto":
        version = await client.get_dataset_version(dataset_version)
        size = version.profile.recommended_tile_size
        if size <= 0:
            advice = version.profile.recommendation or "its boxes suit the input size"
            raise CliError(f"{dataset_version}'s profile recommends no tiling ({advice}); train without "
                           "--tiling auto or give --tile-size")  # fmt: skip
    if mode == "off" or (size is None and flags.overlap is None and flags.min_box_visibility is None):
        return
    hp.tiling.SetInParent()
    if size is not None:
        hp.tiling.tile_size = size
    if flags.overlap is not None:
        hp.tiling.overlap = flags.overlap
    if flags.min_box_visibility is not None:
        hp.tiling.min_box_visibility = flags.min_box_visibility
