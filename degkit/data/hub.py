"""``degkit push``: upload a built dataset's shards and card to the Hugging Face Hub.

Exactly these files go up: ``README.md``, ``skipped.jsonl`` and every finished
shard ``data/*.parquet`` of the build (stale shards of an earlier push are
deleted from the repo in the same commit). Temporary files, the ``.degkit`` state
folder and anything else in the folder stay local. An incomplete build (a
shard missing) is refused, so a half dataset is never published by mistake.

:func:`push_plan` checks the repo id (with huggingface_hub's validator) and
lists what would go up without touching the network (``--dry-run``). Failures a
user can fix come back as one line naming the repo and what to do: no token or a
rejected one (:class:`PermissionError`), no connection to the Hub or an HTTP
error from it (:class:`ConnectionError`).
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

from degkit.data.card import read_license_fields
from degkit.data.info import completeness
from degkit.data.stats import collect_stats

__all__ = ["PushPlan", "files_to_upload", "push_plan", "push_dataset"]


def files_to_upload(folder: str | Path) -> list[str]:
    """Paths (relative, POSIX) that :func:`push_dataset` uploads, sorted.

    Raises:
        FileNotFoundError: not a built dataset folder.
        ValueError: the build is incomplete or its card is missing.
    """
    folder = Path(folder)
    stats = collect_stats(folder)
    if not stats.complete:
        note, _ = completeness(folder, stats)
        raise ValueError(
            f"{str(folder)!r} holds {stats.shards_done} of {stats.shards_total} shards "
            f"({note}); push the finished dataset"
        )
    if not (folder / "README.md").is_file():
        raise ValueError(
            f"{str(folder)!r} has no README.md; resume its build (BuildConfig.resume=True)"
        )
    names = ["README.md", *stats.files]
    if (folder / "skipped.jsonl").is_file():
        names.append("skipped.jsonl")
    return sorted(names)


@dataclasses.dataclass(frozen=True)
class PushPlan:
    """What :func:`push_dataset` would do: the target repo, the files and the card's license."""

    folder: Path
    repo_id: str
    url: str
    private: bool
    revision: str | None
    files: tuple[tuple[str, int], ...]  # (relative path, bytes)
    license: dict[str, str]

    def text(self) -> str:
        """The ``--dry-run`` report: target, license fields, then each file with its size."""
        visibility = "private" if self.private else "public"
        lines = [
            f"target: {self.url} (dataset repo, created {visibility} if missing; "
            f"branch {self.revision or 'main'})",
            "card license: "
            + (", ".join(f"{k}: {v}" for k, v in self.license.items()) or "none in README.md"),
            f"files: {len(self.files)}, {sum(size for _, size in self.files):,} bytes",
        ]
        lines += [f"{size:>15,}  {name}" for name, size in self.files]
        return "\n".join(lines)


def push_plan(
    folder: str | Path, repo_id: str, private: bool = False, revision: str | None = None
) -> PushPlan:
    """Check the repo id and the build, and list the upload (no network).

    Raises:
        ValueError: an invalid repo id, or an incomplete build.
        FileNotFoundError: not a built dataset folder.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ValueError(f"invalid repo id {repo_id!r}: {exc}") from None
    folder = Path(folder)
    names = files_to_upload(folder)
    card = (folder / "README.md").read_text(encoding="utf-8")
    return PushPlan(
        folder=folder,
        repo_id=repo_id,
        url=f"{constants.ENDPOINT}/datasets/{repo_id}",
        private=private,
        revision=revision,
        files=tuple((name, (folder / name).stat().st_size) for name in names),
        license=read_license_fields(card),
    )


def _socket_error(exc: BaseException) -> BaseException | None:
    """The connection-level error (refused, DNS, unreachable, timeout) behind ``exc``, if any.

    huggingface_hub wraps it in its HTTP library's exception (``requests`` before 1.0,
    ``httpx`` since), so the causes are searched rather than one library's classes.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionError | TimeoutError | socket.gaierror):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


_LOGIN = "pass --token, set HF_TOKEN or log in with `hf auth login`"


def _no_token_error(repo_id: str) -> PermissionError:
    return PermissionError(
        f"cannot push to dataset repo {repo_id!r}: no Hugging Face token; {_LOGIN}"
    )


def _explain(exc: Exception, repo_id: str, endpoint: str) -> OSError | None:
    """A one-line error for a Hub failure the user can fix, or None for anything else."""
    from huggingface_hub.utils import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    where = f"cannot push to dataset repo {repo_id!r}"
    if isinstance(exc, OfflineModeIsEnabled):
        return ConnectionError(f"{where}: HF_HUB_OFFLINE is set; unset it to push")
    if isinstance(exc, LocalTokenNotFoundError):
        return _no_token_error(repo_id)
    if isinstance(exc, HfHubHTTPError):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if status == 401:
            return PermissionError(f"{where}: the Hub rejected the token (401); {_LOGIN}")
        if status == 403:
            return PermissionError(
                f"{where}: the token may not write there (403); use a token with write "
                "access to that namespace"
            )
        detail = getattr(exc, "server_message", None) or str(exc).strip().splitlines()[0]
        return ConnectionError(f"{where}: the Hub answered HTTP {status}: {detail}")
    cause = _socket_error(exc)
    if cause is not None:
        return ConnectionError(
            f"{where}: cannot reach {endpoint} ({cause}); check the network or proxy, "
            "then run degkit push again"
        )
    return None


def push_dataset(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
) -> str:
    """Create the dataset repo if needed and upload :func:`files_to_upload`; return its URL.

    Raises:
        ValueError / FileNotFoundError: as :func:`push_plan`.
        PermissionError: no token, or the Hub refused it.
        ConnectionError: the Hub cannot be reached, or answered with an HTTP error.
    """
    from huggingface_hub import HfApi, get_token

    plan = push_plan(folder, repo_id, private, revision)
    api = HfApi(token=token)
    if token is None and get_token() is None:
        raise _no_token_error(repo_id)
    try:
        repo = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(plan.folder),
            repo_id=repo_id,
            repo_type="dataset",
            revision=revision,
            allow_patterns=[name for name, _ in plan.files],
            delete_patterns=["data/*.parquet"],
            commit_message=f"degkit: upload {len(plan.files)} files",
        )
    except Exception as exc:
        error = _explain(exc, repo_id, api.endpoint)
        if error is None:
            raise
        raise error from exc
    return str(repo)
