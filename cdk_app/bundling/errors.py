"""The one error of the asset build."""

from __future__ import annotations


class BundlingError(RuntimeError):
    """The asset cannot be built, or would not work or fit on Lambda."""
