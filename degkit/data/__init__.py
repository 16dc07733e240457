"""Caption-labelled parquet datasets: sources, HR preparation, builds, cards, readers.

Modules: :mod:`~degkit.data.sources` (where HR images come from),
:mod:`~degkit.data.prepare` (decode to RGB8, crops), :mod:`~degkit.data.plan`
(splits, indices, shards), :mod:`~degkit.data.config` (``BuildConfig``, the
options and their defaults), :mod:`~degkit.data.build` (``degkit build``),
:mod:`~degkit.data.shards` (parquet schema and atomic writes),
:mod:`~degkit.data.card` (dataset card), :mod:`~degkit.data.info`
(``degkit info``), :mod:`~degkit.data.loaders` (torch Dataset / DataLoader),
:mod:`~degkit.data.hub` (``degkit push``), :mod:`~degkit.data.parallel` (worker
processes), :mod:`~degkit.data.jobs` (``--shard auto``, parts),
:mod:`~degkit.data.merge` (``degkit merge``) and
:mod:`~degkit.data.ray_engine` (``--engine ray``). Only the light source API is
imported here, so worker processes that decode images stay free of torch.
"""

from degkit.data.sources import SourceImage, embedded_images, resolve_source

__all__ = ["SourceImage", "embedded_images", "resolve_source"]
