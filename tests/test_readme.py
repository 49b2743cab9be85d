"""The README's and the guide's commands are ones the command line takes: every `meanteacher ...` line of
their shell blocks parses (flags, subcommands, choices), and the presets and methods they name exist."""

import re
import shlex
from pathlib import Path

import pytest

from meanteacher.cli import build_parser
from meanteacher.config.toml import list_presets
from meanteacher.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = (README, ROOT / "docs" / "guide.md")


def _shell_commands() -> list[str]:
    blocks = [block for path in DOCUMENTS for block in re.findall(r"```sh\n(.*?)```", path.read_text(), flags=re.S)]
    commands = []
    for block in blocks:
        for line in block.splitlines():
            for part in line.split("&&"):
                part = part.split(" #")[0].strip()
                if part.startswith("meanteacher "):
                    commands.append(part)
    return commands


def test_the_readme_has_commands_to_check():
    assert len(_shell_commands()) >= 10


@pytest.mark.parametrize("command", _shell_commands())
def test_every_readme_command_parses(command):
    arguments = shlex.split(re.sub(r"\$\w+", "0", command.replace("[--json]", "--json")))[
        1:
    ]  # a loop's $seed: a number
    build_parser().parse_args(arguments)  # an unknown flag, subcommand or choice exits here


def test_the_presets_and_methods_the_readme_names_exist():
    text = "".join(path.read_text() for path in DOCUMENTS)
    presets = set(list_presets())
    quoted = {
        name
        for name in re.findall(r"`([\w-]+)`", text)
        if "-" in name and name.startswith(("cifar10-", "svhn-", "resnet", "resnext", "demo-"))
    }
    named = set(re.findall(r"--preset ([\w-]+)", text)) | quoted
    assert named and named <= presets, named - presets
    for method in re.findall(r"--method ([\w-]+)", text):
        assert method in METHODS, method
