"""The shell commands that README.md and docs/*.md show, as the tests read and run them.

A page's commands are the lines of its ``sh`` blocks, the lines of its other blocks that
start like a command (``$ `` prompts, ``.venv/bin/``, ``dig ``: the lines `cdn up`
prints, a bench's command above its output) and its inline code that starts like one
(``.venv/bin/``, ``bin/``, ``python -m ``, ``curl ``, ``dig ``, ``docker ``,
``kubectl ``, ``NAME=value ``). The tests
take them from the page text, never from a copy, and substitute only the page's
placeholders and fixed addresses (to free ports on loopback)."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cdn.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
COMMAND_START = re.compile(r"(\$ |\.venv/bin/|dig )")
INLINE_START = re.compile(r"(\.venv/bin/|bin/|python -m |curl |dig |docker |kubectl |[A-Z_]+=\S+ )")


def page(name: str) -> str:
    return (ROOT / name).read_text()


def sh_blocks(text: str) -> list[list[str]]:
    """Each sh block's command lines (continuations joined, comments cut)."""
    blocks = []
    for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, re.S):
        lines = []
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(re.sub(r"\s+", " ", line))
        blocks.append(lines)
    return blocks


def block_with(name: str, text: str) -> list[str]:
    """The one sh block of page `name` with a line containing `text`."""
    (block,) = [b for b in sh_blocks(page(name)) if any(text in line for line in b)]
    return block


def commands(text: str) -> list[str]:
    """Every command a page shows, once each, in page order."""
    found = [line for block in sh_blocks(text) for line in block]
    for lang, block in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if lang not in ("sh", "bash", "shell"):
            for line in block.splitlines():
                line = line.strip()
                if COMMAND_START.match(line):
                    found.append(line.removeprefix("$ "))
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    found += [c for c in re.findall(r"`([^`\n]+)`", prose) if INLINE_START.match(c)]
    return list(dict.fromkeys(found))


def substitute(line: str, values: Mapping[str, str]) -> str:
    for old, new in values.items():
        line = line.replace(old, new)
    return line


def wait_for_port(address: str, proc: subprocess.Popen, log: Path, deadline: float = 120) -> None:
    """Until `address` (HOST:PORT) accepts a TCP connection; the log if the program quits."""
    host, port = address.rsplit(":", 1)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited {proc.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{proc.args}: nothing on {address} after {deadline} s:\n"
                         f"{log.read_text()}")


def shell_env(**extra: str) -> dict[str, str]:
    """The environment of a page's commands: the project's programs on the PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def is_server(line: str) -> bool:
    """A line that starts a server (it runs until stopped)."""
    return " serve " in f" {line} " or Path(shlex.split(line)[0]).name == "healthcheck"


def server_addresses(line: str) -> list[str]:
    """Where a server line listens: every --listen and --http it names."""
    words = shlex.split(line)
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("--listen", "--http")]


@contextmanager
def run_block(lines: list[str], cwd: Path,
              env: Mapping[str, str]) -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    """A page's block in order: `NAME=VALUE` (or `export NAME=VALUE`) sets a variable for
    the lines after it, a server line starts in the background and is waited for
    on every address it names, any other line runs to its end and must succeed.
    Yields each other line's result; the servers must still run at the end; they are
    stopped (by PID) afterwards."""
    started: list[subprocess.Popen] = []
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    try:
        for line in lines:
            assignment = re.fullmatch(r"(?:export )?([A-Za-z_]\w*)=(\S*)", line)
            if assignment:  # a variable the next lines use
                env = {**env, assignment[1]: assignment[2]}
                continue
            if not is_server(line):
                results[line] = run(line, cwd, env)
                continue
            log = cwd / f"server-{len(started)}.log"
            with log.open("w") as out:
                proc = subprocess.Popen(shlex.split(line), cwd=cwd, env=dict(env), stdout=out,
                                        stderr=subprocess.STDOUT)
            started.append(proc)
            for address in server_addresses(line):
                wait_for_port(address, proc, log)
        yield results
        for proc in started:
            assert proc.poll() is None, f"{proc.args} exited {proc.returncode}"
    finally:
        for proc in reversed(started):
            stop_process(proc)


def run(line: str, cwd: Path, env: Mapping[str, str],
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """One command line through bash, as a reader would type it; it must succeed."""
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=cwd, env=dict(env),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"`{line}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


def workdir(tmp: Path, *names: str) -> Path:
    """A folder to run a page's commands in, as from a checkout: `.venv` and the named
    files of the repository linked in, everything the commands write kept in `tmp`."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / ".venv").symlink_to(BIN.parent)
    for name in names:
        (tmp / name).symlink_to(ROOT / name)
    return tmp
