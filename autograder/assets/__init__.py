"""Model and data assets: what assignments declare, the cache ``autograder assets fetch`` fills, its lock,
and the loaders the sections share.

Sections' helpers use :func:`require_asset` (a cache folder, or an error naming
the fetch command; never a download) and the loaders in
:mod:`autograder.assets.loading`. Light to import: the student sandbox imports it.
"""

from autograder.assets.cache import AssetMissingError, assets_cache_dir, require_asset

__all__ = ["AssetMissingError", "assets_cache_dir", "require_asset"]
