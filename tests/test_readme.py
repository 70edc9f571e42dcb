"""Every `rnn-apps` command the README and docs/ show is a command the CLI has, with options it takes
and apps it knows (the commands themselves run in the tests of each app, on tiny presets); every
`python -m bench run NAME` names a benchmark."""

import re
import shlex

import pytest

from bench import protocol
from rnn_apps import registry
from rnn_apps.cli import main
from tests.conftest import REPO


def _readme_commands() -> list:
    """Each `rnn-apps ...` command in the shell blocks of the README and docs/, as tokens (comments, `&&`
    chains, environment assignments and optional-argument brackets taken apart)."""
    pages = "\n".join(path.read_text() for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))])
    blocks = re.findall(r"```bash\n(.*?)```", pages, flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue  # a comment line: prose, not a command
        line = line.split(" # ")[0].split("   #")[0]
        for part in line.split("&&"):
            tokens = shlex.split(part.replace("--[no-]", "--").replace("[", " ").replace("]", " "))
            while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
                tokens = tokens[1:]
            if tokens[:1] == ["rnn-apps"]:
                commands.append(tokens[1:])
    return commands


COMMANDS = _readme_commands()


def test_the_readme_and_docs_show_commands():
    assert len(COMMANDS) >= 35 and {c[0] for c in COMMANDS} >= {"list", "train", "evaluate", "predict", "export",
                                                                  "query", "generate", "report"}


@pytest.mark.parametrize("tokens", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_each_readme_command_names_what_the_cli_has(tokens):
    command = main.commands.get(tokens[0])
    assert command is not None, f"no command {tokens[0]!r}"
    options = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    for token in tokens[1:]:
        if token.startswith("--"):
            name = token.split("=")[0]
            assert name in options or name.replace("--", "--no-", 1) in options, f"{tokens[0]} has no {name}"
    if tokens[0] == "train":
        assert registry.describe(tokens[1])["name"] == tokens[1], tokens  # a packaged app or a module path


def test_readme_benchmark_commands_name_benchmarks():
    text = "".join(path.read_text() for path in [REPO / "README.md", REPO / "bench" / "RESULTS.md",
                                                 *(REPO / "docs").glob("*.md")])
    named = set(re.findall(r"python -m bench run ([a-z_0-9]+)", text)) - {"NAME"}
    assert named and named <= set(protocol.BENCHMARKS), named - set(protocol.BENCHMARKS)


def test_every_bench_script_named_outside_the_history_exists():
    """README, docs and code name only bench scripts that are there (bench/RESULTS.md's earlier
    sections name removed ones on purpose, with the commit that has them)."""
    pages = [REPO / "README.md", *(REPO / "docs").rglob("*.md"),
             *(path for package in ("rnn_apps", "export", "pipelines", "scripts", "bench", "tests")
               for path in (REPO / package).rglob("*.py"))]
    named = {name for path in pages for name in re.findall(r"\bbench/([a-z_0-9]+\.py)", path.read_text())}
    assert named and not {name for name in named if not (REPO / "bench" / name).exists()}
