"""The commands of the documentation, read from the text itself, and which of them can run here.

Sources: the ``sh``/``bash`` fenced blocks of README.md, docs/*.md and
grafana-automation/README.md, and the ``examples:`` of the ``--help`` texts of the two entry
points. A command is a logical line (``\\`` continuations joined). ``NOT_RUN`` lists, with the
reason, the commands that cannot run on a build machine; every other command is run by
``tests/test_docs.py``. A command that is in neither set does not exist: either it runs, or
it is listed here with its reason, so a new command in the docs cannot go unchecked.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = (
    "docs/deployment.md",
    "README.md",
    "docs/operations.md",
    "grafana-automation/README.md",
)
ENTRY_POINTS = ("tsv_parser.py", "manage_influx_tokens.py")
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")


@dataclass(frozen=True)
class Command:
    """One command line of a document, where it is, and the block it belongs to."""

    source: str  # "docs/operations.md" or "tsv_parser.py --help"
    line: int  # line number of the command's first line in the source
    block: int  # index of its block in the source
    text: str

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True)
class Block:
    source: str
    index: int
    line: int
    heading: str
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class NotRun:
    pattern: str  # a regular expression searched in the command text
    reason: str

    def matches(self, command: Command) -> bool:
        return re.search(self.pattern, command.text) is not None


# What cannot run on a build machine, and why. Every entry must match a command of the docs
# (a stale entry fails the test), and the reason is shown in the test's report.
NOT_RUN: tuple[NotRun, ...] = (
    NotRun(
        r"^sudo apt-get ", "installs system packages: needs the network and root on a real host"
    ),
    NotRun(
        r"\bdocker\b",
        "no container engine here: InfluxDB and Grafana are the test doubles "
        "(tests/doubles/influxdb.py, tests/doubles/grafana.py) at the addresses of .env",
    ),
    NotRun(r"\bsystemctl\b", "no systemd here"),
    NotRun(r"\bufw\b", "would change this machine's firewall"),
    NotRun(r"\blogrotate\b", "logrotate is not installed here and /etc/logrotate.d is the host's"),
    NotRun(
        r"^sudo install -m 644 \S+ .*/etc/",
        "installs a file into the host's /etc for a service (SFTPGo, Caddy, systemd) that does "
        "not run here; tests/test_deploy.py checks the files themselves",
    ),
    NotRun(r"/etc/systemd/", "systemd drop-in for Caddy: no systemd or Caddy here"),
    NotRun(
        r"/pip install -r ",
        "needs PyPI; the test links the packages of the checkout's .venv into the new "
        "environment instead (a .pth file and the console scripts)",
    ),
    NotRun(
        r"^sudo editor ",
        "interactive; the test makes the edits the text asks for (every 'change me' value, and "
        "the addresses and credentials of the doubles that stand for Compose's services)",
    ),
    NotRun(r"^make test\b", "runs the whole suite, which this test is part of"),
    NotRun(r"-m pytest\b", "runs tests of the suite, which `make test` runs itself"),
)


@dataclass(frozen=True)
class Prelude:
    """Shell lines run before a block whose commands match ``pattern``: what the text says the
    reader has at hand but does not show."""

    pattern: str
    lines: tuple[str, ...]
    reason: str


PRELUDES: tuple[Prelude, ...] = (
    Prelude(
        r"^sudo install -o sftpgo .*channels\.csv",
        (
            "printf '%s\\n' channel_id,name,description 'M02001283_Ch1,Chauffe-eau,ballon'"
            " 'M02001283_U1,Phase 1,' >channels.csv",
        ),
        "the channels.csv the administrator wrote, which the text says is in the current folder",
    ),
    Prelude(
        r'"\$company" "\$campaign"',
        ("company=acme", "campaign=site-1"),
        "a fragment of the hook's code: the hook has the company and campaign in these variables",
    ),
)


def prelude(block: Block) -> list[str]:
    """The lines run before the block (see ``PRELUDES``)."""
    lines: list[str] = []
    for entry in PRELUDES:
        if any(re.search(entry.pattern, command.text) for command in block.commands):
            lines.extend(entry.lines)
    return lines


def fenced_blocks(path: Path, source: str) -> list[Block]:
    """The shell blocks of a Markdown file (also those indented in a list)."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    heading = ""
    number = 0
    while number < len(lines):
        line = lines[number]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = FENCE.match(line)
        number += 1
        if not fence:
            continue
        indent, language = fence.group(1), fence.group(2)
        start = number
        body: list[str] = []
        while number < len(lines) and not FENCE.match(lines[number]):
            body.append(lines[number][len(indent) :] if lines[number].startswith(indent) else "")
            number += 1
        number += 1  # the closing fence
        if language in SHELL_LANGUAGES:
            index = len(blocks)
            commands = logical_lines(body, source, start + 1, index)
            blocks.append(Block(source, index, start, heading, tuple(commands)))
    return blocks


def logical_lines(body: list[str], source: str, first_line: int, block: int) -> list[Command]:
    """Commands of a block: continuation lines joined, blank and comment lines dropped."""
    commands: list[Command] = []
    pending: list[str] = []
    start = first_line
    for offset, raw in enumerate(body):
        if not pending:
            start = first_line + offset
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1].rstrip())
            continue
        pending.append(raw.strip() if pending else raw.rstrip())
        commands.append(Command(source, start, block, " ".join(part.strip() for part in pending)))
        pending = []
    assert not pending, f"{source}:{start}: a continuation line ends the block"
    return commands


def help_text(script: str, python: str) -> str:
    """The ``--help`` output of an entry point, as a user sees it."""
    result = subprocess.run(
        [python, str(PROJECT_ROOT / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={
            "PATH": "/usr/bin:/bin",
            "COLUMNS": "100",
            "LANG": "C.UTF-8",
            # The environment running the tests, wherever the checkout keeps its own.
            "POWERVIEW_VENV": str(Path(sys.executable).parent.parent),
        },
    )
    return result.stdout


def epilog_block(script: str, text: str) -> Block:
    """The commands of the ``examples:`` section of a ``--help`` text.

    In ``tsv_parser.py``'s text a command starts with the program's name, preceded by a line
    saying what it does; in ``manage_influx_tokens.py``'s, commands follow ``#`` comments."""
    source = f"{script} --help"
    lines = text.splitlines()
    try:
        start = lines.index("examples:") + 1
    except ValueError:
        return Block(source, 0, 0, "examples", ())
    body: list[str] = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break  # the next section
        stripped = line.strip()
        is_command = (
            stripped.startswith((script, f"./{script}", "--"))
            or re.match(r"^[A-Z_]+=\$\(", stripped) is not None
            or (body and body[-1].rstrip().endswith("\\"))
        )
        body.append(stripped if is_command else "")
    commands = logical_lines(body, source, start + 1, 0)
    return Block(source, 0, start, "examples", tuple(commands))


def all_blocks(python: str) -> list[Block]:
    """Every shell block of the documents, then the examples of each ``--help``."""
    blocks: list[Block] = []
    for name in DOCUMENTS:
        blocks.extend(fenced_blocks(PROJECT_ROOT / name, name))
    for script in ENTRY_POINTS:
        blocks.append(epilog_block(script, help_text(script, python)))
    return blocks


def not_run_reason(command: Command) -> str | None:
    """Why the command cannot run here, or None when it runs."""
    for entry in NOT_RUN:
        if entry.matches(command):
            return entry.reason
    return None
