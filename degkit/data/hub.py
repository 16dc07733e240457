"""``degkit push``: upload a built dataset's shards and card to the Hugging Face Hub.

Exactly these files go up: ``README.md``, ``skipped.jsonl`` and every finished
shard ``data/*.parquet`` of the build (stale shards of an earlier push are
deleted from the repo in the same commit). Temporary files, the ``.degkit`` state
folder and anything else in the folder stay local. An incomplete build (a
shard missing) is refused, so a half dataset is never published by mistake.
"""

from __future__ import annotations

from pathlib import Path

from degkit.data.stats import collect_stats

__all__ = ["files_to_upload", "push_dataset"]


def files_to_upload(folder: str | Path) -> list[str]:
    """Paths (relative, POSIX) that :func:`push_dataset` uploads, sorted.

    Raises:
        FileNotFoundError: not a built dataset folder.
        ValueError: the build is incomplete or its card is missing.
    """
    folder = Path(folder)
    stats = collect_stats(folder)
    if not stats.complete:
        raise ValueError(
            f"{str(folder)!r} is incomplete ({stats.shards_done} of {stats.shards_total} "
            "shards); finish its build first (BuildConfig.resume=True)"
        )
    if not (folder / "README.md").is_file():
        raise ValueError(
            f"{str(folder)!r} has no README.md; resume its build (BuildConfig.resume=True)"
        )
    names = ["README.md", *stats.files]
    if (folder / "skipped.jsonl").is_file():
        names.append("skipped.jsonl")
    return sorted(names)


def push_dataset(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
) -> str:
    """Create the dataset repo if needed and upload :func:`files_to_upload`; return its URL."""
    from huggingface_hub import HfApi

    names = files_to_upload(folder)
    api = HfApi(token=token)
    repo = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="dataset",
        revision=revision,
        allow_patterns=names,
        delete_patterns=["data/*.parquet"],
        commit_message=f"degkit: upload {len(names)} files",
    )
    return str(repo)
