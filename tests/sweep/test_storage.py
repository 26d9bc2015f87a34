"""The sweep's study: a ``--storage`` URL Optuna cannot open is told why and what to change,
before anything loads or is written; a database that cannot be opened is told without its
password; and which other settings a study takes when run again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dialogsum.errors import ConfigError
from dialogsum.sweep.options import CHECKED_STORAGE, SweepOptions
from dialogsum.sweep.storage import redacted
from dialogsum.sweep.study import open_study


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("/tmp/study.db", ["is not a database URL", "sqlite:////absolute/path/study.db"]),
        ("sqllite:///s.db", ["'sqllite' is not a database", "did you mean sqlite?", "postgresql"]),
        (
            "postgresql+nodriver://u@h/d",
            ["'nodriver' is not a driver SQLAlchemy knows for postgresql", "leave it out"],
        ),
        # a driver that is not installed here: the package that installs it
        ("mysql+mysqlconnector://u@h/d", ["not installed", "pip install 'mysql-connector-python'"]),
        ("sqlite:///~/s.db", ["SQLite does not expand '~'"]),
        # not a URL: told without what looks like its password
        ("postgres//ann:secret@db/s", ["'postgres//ann:***@db/s' is not a database URL"]),
    ],
)
def test_a_storage_optuna_cannot_open_is_refused_with_what_to_change(
    url: str, words: list[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        SweepOptions(storage=url)
    for word in words:
        assert word in str(caught.value)


def test_storage_that_works_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert SweepOptions(storage=url).storage == url
    # A relative path, where the sweep runs: Ray Tune runs trials in folders of their own.
    monkeypatch.chdir(tmp_path)
    assert SweepOptions(storage="sqlite:///studies/s.db").storage == (
        f"sqlite:///{tmp_path / 'studies' / 's.db'}"
    )
    # A worker takes the options its sweep checked as they are (its node need not have the
    # database's driver).
    checked = {CHECKED_STORAGE: True}
    assert SweepOptions.model_validate({"storage": "x://y"}, context=checked).storage == "x://y"


def test_a_database_that_cannot_be_opened_is_told_without_its_password(tmp_path: Path) -> None:
    assert redacted("postgresql://ann:secret@db/sweeps") == "postgresql://ann:***@db/sweeps"
    folder = tmp_path / "a-folder.db"  # a folder where the database file would be
    folder.mkdir()
    options: Any = SweepOptions(storage=f"sqlite:///{folder}")
    with pytest.raises(ConfigError) as caught:
        open_study(tmp_path, options, {}, 1)
    message = str(caught.value)
    assert "Could not open the sweep's study in --storage sqlite:///" in message
    assert "unable to open database file" in message and "Background on this error" not in message


def test_a_sweep_whose_study_cannot_be_opened_leaves_no_folder(
    tiny: Any, data_files: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    with pytest.raises(ConfigError, match="Could not open the sweep's study"):
        tiny.sweep(
            data_files / "train.jsonl",
            data_files / "validation.jsonl",
            space={"r": [2, 4]},
            output_dir=tmp_path / "sweep",
            sweep={"storage": f"sqlite:///{folder}", "progress": False},
        )
    assert not (tmp_path / "sweep").exists()


def test_a_study_nothing_ran_in_takes_new_settings_and_an_async_one_more_trials(
    tmp_path: Path,
) -> None:
    options: Any = SweepOptions()
    settings = {"trials": 4, "seed": 0, "schedule": "async", "rung_decoding": "model"}
    open_study(tmp_path, options, settings, 1)
    # Refused at its budget before any trial: another try with other settings is no conflict.
    study = open_study(tmp_path, options, {**settings, "trials": 2, "seed": 1}, 1)
    assert study.user_attrs["settings"]["seed"] == 1
    study.enqueue_trial({})
    study.ask()
    assert open_study(tmp_path, options, {**settings, "trials": 6, "seed": 1}, 1)
    with pytest.raises(ConfigError, match="other settings"):
        open_study(tmp_path, options, {**settings, "trials": 6, "seed": 2}, 1)
    # A shared database may be opened by other machines at any moment: each must agree.
    shared: Any = SweepOptions(storage=f"sqlite:///{tmp_path / 'shared.db'}")
    open_study(tmp_path, shared, settings, 1)
    with pytest.raises(ConfigError, match="other settings"):
        open_study(tmp_path, shared, {**settings, "seed": 1}, 1)
    # A sync sweep's bracket is asked whole at its start: another number is another sweep.
    synced = tmp_path / "sync"
    synced.mkdir()
    sync = {**settings, "schedule": "sync"}
    open_study(synced, options, sync, 1).ask()
    with pytest.raises(ConfigError, match=r"trials: 4 there, 6 here"):
        open_study(synced, options, {**sync, "trials": 6}, 1)
