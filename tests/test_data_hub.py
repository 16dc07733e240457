"""degkit push: the exact files uploaded, the dry-run report, the card's license fields,
and one-line errors (no traceback) for a bad repo id, no token, a rejected token or no
network, observed with the real huggingface_hub against a closed port and a local server.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import huggingface_hub
import pytest
from data_corpus import photo_like, png_bytes, write_fast_recipe
from huggingface_hub import DatasetCard
from huggingface_hub.utils import LocalTokenNotFoundError, OfflineModeIsEnabled
from PIL import Image

from degkit.cli import main
from degkit.data.build import BuildConfig, build_dataset
from degkit.data.hub import files_to_upload, push_dataset


def _build(root: Path, out: str, shard: str | None = None, license: str = "other") -> Path:
    images = root / "images"
    images.mkdir(exist_ok=True)
    for i in range(5):
        (images / f"{i}.png").write_bytes(png_bytes(Image.fromarray(photo_like(24, 24, i))))
    config = BuildConfig(
        recipe=str(write_fast_recipe(root)),
        out=root / out,
        source=str(images),
        crop=16,
        splits="train=0.6,validation=0.4",
        rows_per_shard=2,
        shard=shard,
        workers=0,
        license=license,
        progress=False,
    )
    build_dataset(config)
    return root / out


def test_upload_list_is_card_shards_and_skipped(tmp_path, capsys):
    out = _build(tmp_path, "ds")
    (out / "data" / ".stray.tmp").write_text("x")
    (out / "notes.txt").write_text("local only")
    expected = [
        "README.md",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "data/validation-00000-of-00001.parquet",
        "skipped.jsonl",
    ]
    assert files_to_upload(out) == expected


def test_dry_run_shows_target_sizes_and_license(tmp_path, capsys):
    out = _build(tmp_path, "ds")
    assert main(["push", str(out), "user/repo", "--dry-run", "--private"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"target: {huggingface_hub.constants.ENDPOINT}/datasets/user/repo ")
    assert "private" in lines[0] and "branch main" in lines[0]
    assert lines[1] == "card license: license: other, license_name: unspecified"
    listed = {line.split()[1]: int(line.split()[0].replace(",", "")) for line in lines[3:]}
    assert list(listed) == files_to_upload(out)
    assert listed == {name: (out / name).stat().st_size for name in listed}
    assert lines[2] == f"files: {len(listed)}, {sum(listed.values()):,} bytes"


@pytest.mark.parametrize(
    "repo_id", ["bad id", "a/b/c", "user/x--y", "user/.repo", "user/" + "r" * 97]
)
def test_invalid_repo_id_is_one_line_before_anything_else(tmp_path, capsys, repo_id):
    for extra in (["--dry-run"], ["--token", "t"]):
        assert main(["push", str(tmp_path), repo_id, *extra]) == 2  # not even a dataset
        err = capsys.readouterr().err
        assert err.startswith(f"degkit push: error: invalid repo id {repo_id!r}: ")
        assert err.count("\n") == 1


def test_card_license_fields_parse_as_the_hub_reads_them(tmp_path):
    """``other`` carries ``license_name`` (the Hub requires it); a known id stands alone."""
    for license, expected in (
        ("other", {"license": "other", "license_name": "unspecified"}),
        ("cc-by-4.0", {"license": "cc-by-4.0"}),
    ):
        out = _build(tmp_path, license, license=license)
        data = DatasetCard.load(out / "README.md").data.to_dict()
        assert {k: v for k, v in data.items() if k.startswith("license")} == expected


def _api_at(monkeypatch, endpoint: str):
    """huggingface_hub's real HfApi, online but talking to ``endpoint`` instead of the Hub."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # tests set it

    class LocalApi(huggingface_hub.HfApi):
        def __init__(self, token=None):
            super().__init__(endpoint=endpoint, token=token)

    return LocalApi


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_push_without_network_is_one_line(tmp_path, capsys, monkeypatch):
    out = _build(tmp_path, "ds")
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(huggingface_hub, "HfApi", _api_at(monkeypatch, endpoint))
    with pytest.raises(ConnectionError, match="cannot reach") as info:
        push_dataset(out, "me/sr-data", token="hf_test")
    assert info.value.__cause__ is not None  # the library's error stays attached
    assert main(["push", str(out), "me/sr-data", "--token", "hf_test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("degkit push: error: cannot push to dataset repo 'me/sr-data': ")
    assert f"cannot reach {endpoint}" in err and "network" in err and err.count("\n") == 1


class _StatusHandler(BaseHTTPRequestHandler):
    """Answers every request with the server's ``status`` and a Hub-style JSON error."""

    def _answer(self):
        body = json.dumps({"error": "Invalid credentials in Authorization header"}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (401, PermissionError, "rejected the token (401)"),
        (403, PermissionError, "may not write there (403)"),
        (500, ConnectionError, "answered HTTP 500"),
    ],
)
def test_hub_http_errors_are_one_line(tmp_path, capsys, monkeypatch, status, error, words):
    out = _build(tmp_path, "ds")
    server = HTTPServer(("127.0.0.1", 0), _StatusHandler)
    server.status = status
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(
            huggingface_hub, "HfApi", _api_at(monkeypatch, f"http://127.0.0.1:{server.server_port}")
        )
        with pytest.raises(error, match="'me/sr-data'") as info:
            push_dataset(out, "me/sr-data", token="hf_test")
        assert words in str(info.value)
        assert main(["push", str(out), "me/sr-data", "--token", "hf_test"]) == 2
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert err.startswith("degkit push: error: ") and words in err and err.count("\n") == 1


def test_no_token_is_refused_before_contacting_the_hub(tmp_path, capsys, monkeypatch):
    out = _build(tmp_path, "ds")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no saved login either
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "t"))
    monkeypatch.setattr(huggingface_hub, "HfApi", _api_at(monkeypatch, "http://127.0.0.1:1"))
    assert huggingface_hub.get_token() is None
    assert main(["push", str(out), "me/sr-data"]) == 2
    err = capsys.readouterr().err
    assert "no Hugging Face token" in err and "--token" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("raised", "error", "words"),
    [
        (LocalTokenNotFoundError("Token is required"), PermissionError, "no Hugging Face token"),
        (OfflineModeIsEnabled("offline"), ConnectionError, "HF_HUB_OFFLINE is set"),
    ],
)
def test_library_errors_a_user_causes_become_one_line(tmp_path, monkeypatch, raised, error, words):
    out = _build(tmp_path, "ds")

    def fail(self, *args, **kwargs):
        raise raised

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", fail)
    with pytest.raises(error, match=words):
        push_dataset(out, "me/sr-data", token="hf_test")


def test_other_failures_are_not_disguised(tmp_path, monkeypatch):
    out = _build(tmp_path, "ds")

    def fail(self, *args, **kwargs):
        raise RuntimeError("a bug, not the network")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", fail)
    with pytest.raises(RuntimeError, match="a bug"):
        push_dataset(out, "me/sr-data", token="hf_test")


def test_push_creates_the_repo_and_uploads_exactly_those_files(tmp_path, monkeypatch):
    out = _build(tmp_path, "ds")
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["create_repo"] = (repo_id, kwargs)
            return f"https://huggingface.co/datasets/{repo_id}"

        def upload_folder(self, **kwargs):
            calls["upload_folder"] = kwargs

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = push_dataset(out, "me/sr-data", private=True, token="t")
    assert url == "https://huggingface.co/datasets/me/sr-data"
    assert calls["token"] == "t"
    assert calls["create_repo"] == (
        "me/sr-data",
        {"repo_type": "dataset", "private": True, "exist_ok": True},
    )
    upload = calls["upload_folder"]
    assert upload["repo_id"] == "me/sr-data" and upload["repo_type"] == "dataset"
    assert upload["folder_path"] == str(out)
    assert upload["allow_patterns"] == files_to_upload(out)


def test_incomplete_build_is_refused(tmp_path):
    out = _build(tmp_path, "half")
    sorted(out.glob("data/*.parquet"))[0].unlink()  # e.g. a build killed before its end
    with pytest.raises(ValueError, match="incomplete: rerun the build with --resume"):
        files_to_upload(out)
    part = _build(tmp_path, "part", shard="0/2")
    with pytest.raises(ValueError, match="part 0 of 2 of a split build: join the parts"):
        files_to_upload(part)
    with pytest.raises(FileNotFoundError, match="not a degkit dataset"):
        files_to_upload(tmp_path)
