"""The command line itself: an unknown argument or command is told with what it most likely meant
(with the command's own usage), --version, and a reader that goes away mid-output."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogsum.cli import main


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: dialogsum {argv[0]}" in err
    return err.strip().splitlines()[-1]


def test_a_misspelt_flag_is_told_the_closest_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert _error(["summarize", "--nmu-beams", "2"], capsys) == (
        "dialogsum summarize: error: unrecognized arguments: --nmu-beams 2 "
        "(--nmu-beams: did you mean --num-beams?)"
    )
    # transformers' spelling, with underscores
    assert "(--max_new_tokens: did you mean --max-new-tokens?)" in _error(
        ["summarize", "--max_new_tokens=5"], capsys
    )
    assert "(--prot: did you mean --port?)" in _error(["serve", "--prot", "8000"], capsys)


def test_no_flag_is_abbreviated_and_other_tools_names_are_told_ours(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --lr was taken for --lr-scheduler (its prefix) and failed there, on a learning rate
    assert "(--lr: did you mean --learning-rate?)" in _error(["train", "--lr", "1e-4"], capsys)
    assert "(--epoch: did you mean --epochs?)" in _error(["train", "--epoch", "3"], capsys)
    assert "(--num_train_epochs: did you mean --epochs?)" in _error(
        ["train", "--num_train_epochs", "3"], capsys
    )
    assert "(--max_length: did you mean --max-new-tokens?)" in _error(
        ["summarize", "--max_length", "20"], capsys
    )


def test_a_method_option_given_as_a_flag_is_told_the_option_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # peft's name for LoRA's rank, and the chosen method's options
    assert "(--lora_r is a method option: --option r=8)" in _error(
        ["train", "--lora_r", "8"], capsys
    )
    assert "(--virtual_tokens is a method option: --option num_virtual_tokens=20)" in _error(
        ["sweep", "--method", "prompt_tuning", "--virtual_tokens", "20"], capsys
    )
    # the method a --config file chooses (the flag is not given)
    config = tmp_path / "sweep.yaml"
    config.write_text("method: prompt_tuning\n")
    assert "(--virtual_tokens is a method option: --option num_virtual_tokens=20)" in _error(
        ["train", "--config", str(config), "--virtual_tokens", "20"], capsys
    )
    config.write_text("method: [not, a, name\n")  # its own error comes later
    assert _error(["train", "--config", str(config), "--lora_r", "8"], capsys).endswith("8")
    # export's --option is the backend's: no method hint there
    assert _error(["export", "--alpha", "32"], capsys).endswith("--alpha 32")


def test_a_bare_path_is_told_the_flag_that_takes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _error(["serve", str(tmp_path)], capsys).endswith(
        f"(--model takes a path: --model {tmp_path})"
    )
    dialogues = tmp_path / "calls.jsonl"
    dialogues.write_text('{"dialogue": "#Person1#: Hi."}\n')
    assert _error(["summarize", "--model", str(tmp_path), str(dialogues)], capsys).endswith(
        f"(--input takes a path: --input {dialogues})"
    )
    # batch takes a folder of inputs too
    assert _error(["batch", str(tmp_path)], capsys).endswith(
        f"(--model or --input takes a path: --model {tmp_path})"
    )
    assert _error(["batch", "--model", "m", str(tmp_path)], capsys).endswith(
        f"(--input takes a path: --input {tmp_path})"
    )
    # a dialogue pasted as an argument is too long a name to look up: no traceback
    pasted = "#Person1#: " + "hello " * 80
    assert _error(["summarize", "--model", "m", pasted], capsys).endswith(pasted.strip())
    # a word that is no path, and a path where --model is given already: argparse's own
    assert _error(["summarize", "stray"], capsys).endswith("unrecognized arguments: stray")
    assert _error(["serve", "--model", str(tmp_path), str(tmp_path)], capsys).endswith(
        f"unrecognized arguments: {tmp_path}"
    )


def test_a_misspelt_command_is_told_the_closest_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["sumarize", "--model", "dialogsum-tiny"])
    assert stopped.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(
        "dialogsum: error: unknown command 'sumarize': did you mean 'summarize'?"
    )
    assert "plugins, train, sweep" in last  # the commands as typed


def test_a_commands_flag_before_the_command_is_told_to_go_after_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def last(argv: list[str]) -> str:
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    # argparse blamed summarize for a flag it never saw, and took a value for the command
    assert last(["--verbsoe", "summarize"]) == (
        "dialogsum: error: --verbsoe comes before the command: a command's flags go after "
        "it (dialogsum summarize --verbsoe ...)."
    )
    assert "(dialogsum serve --model=m ...)" in last(["--model=m", "serve"])
    assert last(["--model", "m"]).startswith(
        "dialogsum: error: no command before --model: the command comes first "
        "(dialogsum COMMAND --model m). The commands: plugins, train"
    )
    # a stray word before the command is still taken for a misspelt command
    assert last(["sumarize", "summarize"]).startswith("dialogsum: error: unknown command")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from dialogsum import __version__

    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"dialogsum {__version__}"


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    import subprocess
    import sys

    # `dialogsum plugins --json | head -c 100`: the pipe closes before the command writes.
    command = [sys.executable, "-m", "dialogsum", "plugins", "--json"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141  # as a shell reports a command its pipe closed on
    assert "Traceback" not in err and "BrokenPipeError" not in err
