"""Model and data assets: what assignments declare, the cache ``autograder assets fetch`` fills, its lock,
and the loaders the sections share.

Sections' helpers use :func:`check_profile`, :func:`require_asset` (a cache folder, or an error naming
the fetch command; never a download) and the loaders in
:mod:`autograder.assets.loading`. Light to import: the student sandbox imports it.
"""

from autograder.assets.cache import AssetMissingError, assets_cache_dir, require_asset
from autograder.assets.declared import PROFILES, check_profile

__all__ = ["PROFILES", "AssetMissingError", "assets_cache_dir", "check_profile", "require_asset"]
