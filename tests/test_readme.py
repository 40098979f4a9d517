"""The README's examples run as written, in order, against a real ``yidang serve``.

Every ``sh`` block of the "Using it (curl)" section and the validation/terminology block is split
into commands (backslash continuations joined); variable assignments are kept as a prelude with
``B`` pointed at the test server; each other command runs in bash from the checkout, and a comment
ending in ``→ NNN`` (an HTTP status, optionally ``, N match``: the searchset's total) or ``exit N``
is checked. No command may meet a 5xx.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.served import Served, served

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = ("## Using it (curl)", "Validation and terminology")
SECURED = ("### Secured setup, end to end",)
"""Run against a server started with ``--auth smart``, in a scratch directory (it writes key files)."""
STATUS = re.compile(r"^HTTP/[\d.]+ (\d{3})", re.MULTILINE)


def readme_commands(blocks: tuple[str, ...] = BLOCKS) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands: list[str] = []
    for heading in blocks:
        start = text.index(heading)
        block = text[text.index("```sh\n", start) + 6: text.index("```\n", text.index("```sh\n", start) + 6)]
        current = ""
        for line in block.splitlines():
            if line.rstrip().endswith("\\") and "#" not in line.split("\\")[-1]:
                current += line.rstrip()[:-1] + " "
                continue
            current += line
            if current.strip():
                commands.append(current.strip())
            current = ""
    return commands


def _expectation(command: str) -> tuple[str, int] | None:
    comment = command.rsplit("  #", 1)[-1] if "  #" in command else ""
    if match := re.search(r"→ (\d{3})\b", comment):
        return "status", int(match.group(1))
    if match := re.search(r"exit (\d+)", comment):
        return "exit", int(match.group(1))
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("readme"), "--log-level", "warning") as s:
        yield s


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = {"YIDANG_RATE_LIMITS": '{"auth": 0}'}
    with served(tmp_path_factory.mktemp("readme-secured"), "--auth", "smart", "--log-level", "warning",
                env=env) as s:
        yield s


def test_the_readme_has_its_examples() -> None:
    commands = readme_commands()
    assert sum(c.startswith("curl") for c in commands) >= 20
    assert all(_expectation(c) is not None for c in commands if not re.match(r"^[A-Z]+=", c))
    secured = readme_commands(SECURED)
    assert all(_expectation(c) is not None for c in secured if not re.match(r"^[A-Z]+=", c))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_commands_run_in_order(server: Served) -> None:
    run_commands(readme_commands(), server, ROOT)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_secured_setup_runs(secured: Served, tmp_path: Path) -> None:
    run_commands(readme_commands(SECURED), secured, tmp_path, data=secured.log.parent / "store")


def run_commands(commands: list[str], server: Served, cwd: Path, *, data: Path | None = None) -> None:
    venv_bin = str(Path(sys.executable).parent)
    prelude: list[str] = []
    for command in commands:
        if re.match(r"^[A-Z]+=", command):
            name = command.split("=", 1)[0]
            value = command.split("  #")[0].replace(".venv/bin/", venv_bin + "/")
            prelude.append(f"{name}={server.base}" if name == "B" else f"{name}={data}" if name == "D" and data
                           else value)
            continue
        script = "\n".join([*prelude, command.replace(".venv/bin/", venv_bin + "/")])
        done = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120)
        statuses = [int(s) for s in STATUS.findall(done.stdout)] or (
            [int(done.stdout.strip())] if done.stdout.strip().isdigit() else [])
        assert all(s < 500 for s in statuses), f"{command}\n{done.stdout[-2000:]}"
        expected = _expectation(command)
        if expected is None:
            continue
        kind, value = expected
        if kind == "status":
            assert statuses and statuses[-1] == value, f"{command}\n→ {statuses}\n{done.stdout[-1500:]}{done.stderr}"
            if match := re.search(r"(\d+) match", command.rsplit("  #", 1)[-1]):
                assert f'"total":{match.group(1)},' in done.stdout, f"{command}\n{done.stdout[-1500:]}"
        else:
            assert done.returncode == value, f"{command}\n→ exit {done.returncode}\n{done.stdout[-1500:]}{done.stderr}"
