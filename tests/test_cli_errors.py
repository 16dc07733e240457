"""The library names config fields; only the command line maps them to its options.

User errors print one line; anything else (a bug, e.g. a stray KeyError) keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from degkit.cli import build_parser, main, option_names
from degkit.data.config import BuildConfig, config_defaults


def _build_options() -> dict[str, list[str]]:
    """dest -> option strings of ``degkit build`` (positionals: their metavar-less name)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    build = sub.choices["build"]
    options: dict[str, list[str]] = {}
    for action in build._actions:
        options.setdefault(action.dest, []).extend(action.option_strings or [action.dest.upper()])
    return options


def test_every_config_field_maps_to_a_real_option() -> None:
    options = _build_options()
    for field in dataclasses.fields(BuildConfig):
        shown = option_names(f"BuildConfig.{field.name} must be good")
        option = shown.removesuffix(" must be good")
        dest = "quiet" if field.name == "progress" else field.name
        assert option in options[dest], (field.name, option)
    assert option_names("set BuildConfig.crop=None") == "set --no-crop"
    assert option_names("set BuildConfig.resume=True to go on") == "set --resume to go on"


def test_option_defaults_are_the_config_defaults() -> None:
    args = build_parser().parse_args(["build", "deplsr", "--out", "somewhere"])
    defaults = config_defaults()
    for field in dataclasses.fields(BuildConfig):
        if field.name in defaults and field.name in vars(args):
            assert getattr(args, field.name) == defaults[field.name], field.name
    assert args.quiet is (not defaults["progress"])


def test_a_user_error_is_one_line_naming_the_option(tmp_path, capsys) -> None:
    code = main(["build", "deplsr", "--out", str(tmp_path / "o"), "--scale", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "degkit build: error: --scale must be a positive integer, got 0\n"


def test_the_library_names_the_field(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"^BuildConfig\.scale must be a positive integer"):
        BuildConfig(recipe="deplsr", out=tmp_path / "o", scale=0)


def test_an_unexpected_key_error_keeps_its_traceback(monkeypatch, tmp_path) -> None:
    import degkit.data.info

    def broken(*args, **kwargs):
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr(degkit.data.info, "info_text", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["info", str(tmp_path)])


def test_replaying_a_record_without_a_field_is_a_value_error() -> None:
    from degkit.ops import OpError, create_op

    with pytest.raises(OpError, match="record 1 has no 'quality'"):
        create_op("jpeg").params_from_records(
            [{"op": "jpeg", "quality": 50, "mode": "codec"}, {"op": "jpeg", "mode": "codec"}]
        )


def test_a_build_of_another_version_is_one_line(tmp_path, capsys) -> None:
    import json

    from degkit.data.state import STATE_DIR

    (tmp_path / STATE_DIR).mkdir()
    old = {"settings": {"flat_columns": {"noise_kind": "string"}}, "fingerprint": "f"}
    (tmp_path / STATE_DIR / "build.json").write_text(
        json.dumps({**old, "command": "", "shards": []})
    )
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not written by this degkit version" in err and err.count("\n") == 1
