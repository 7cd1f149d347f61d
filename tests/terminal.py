"""Run the command line on a real pseudo-terminal, as a person at a terminal runs it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import sys
import termios
import threading
import time
from pathlib import Path


class Terminal:
    """An `outreach` command on a pseudo-terminal of a given size, with what it has printed."""

    def __init__(
        self, *args: str, cwd: Path, env: dict[str, str], columns: int = 80, rows: int = 24
    ) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
        full_env.update(TERM="xterm", COLUMNS=str(columns), LINES=str(rows), **env)
        pid, fd = pty.fork()
        if pid == 0:  # the child: its terminal is the pseudo-terminal's other end
            try:
                size = struct.pack("HHHH", rows, columns, 0, 0)
                fcntl.ioctl(0, termios.TIOCSWINSZ, size)  # the terminal, whatever sys.stdin is
                os.chdir(cwd)
                argv = [sys.executable, "-m", "outreach", *args]
                os.execve(sys.executable, argv, full_env)  # noqa: S606 - an argument list
            finally:
                os._exit(127)
        self.pid, self._fd = pid, fd
        self._data = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.returncode: int | None = None

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self._data.extend(chunk)

    @property
    def output(self) -> str:
        """Return everything printed so far, escape sequences and carriage returns included."""
        with self._lock:
            return self._data.decode("utf-8", errors="replace")

    def wait_for(self, text: str, *, timeout: float = 60) -> float:
        """Wait until ``text`` has been printed; return when, by the monotonic clock."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline:
                msg = f"{text!r} not printed within {timeout} s; printed: {self.output!r}"
                raise AssertionError(msg)
            time.sleep(0.01)
        return time.monotonic()

    def press(self, keys: bytes) -> None:
        """Type ``keys``; Ctrl-C is byte 3, which makes the terminal send SIGINT to the command."""
        os.write(self._fd, keys)

    def wait(self, *, timeout: float = 60) -> int:
        """Wait for the command to end and return its exit status."""
        deadline = time.monotonic() + timeout
        while self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, 9)
                msg = f"still running after {timeout} s; printed: {self.output!r}"
                raise AssertionError(msg)
            time.sleep(0.02)
        self._reader.join(timeout=5)
        os.close(self._fd)
        return self.returncode

    def screen(self) -> list[str]:
        """Return the lines as the terminal shows them at the end, colours and cursor moves applied.

        Enough of a terminal for what the command line prints: carriage return, line feed,
        erase line (ESC [2K), cursor up (ESC [1A); other escape sequences change nothing shown.
        """
        rows: list[list[str]] = [[]]
        row = col = 0
        for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]", self.output):
            if token == "\r":
                col = 0
            elif token == "\n":
                row += 1
                if row == len(rows):
                    rows.append([])
            elif token == "\x1b[2K":
                rows[row] = []
            elif token == "\x1b[1A":
                row = max(0, row - 1)
            elif token.startswith("\x1b"):
                continue
            else:
                line = rows[row]
                line.extend(" " * (col - len(line)))
                if col < len(line):
                    line[col] = token
                else:
                    line.append(token)
                col += 1
        return ["".join(line).rstrip() for line in rows]
