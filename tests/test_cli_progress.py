"""The CLI's progress bar (issue 24): on a terminal it shows the rate and the time left (tqdm);
off a terminal, one plain line per new message. The terminal is a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRIVE = """
import time
from parascale_tools.output import ProgressBar
bar = ProgressBar("rescale")
for i in range(1, 11):
    time.sleep(0.02)
    bar.steps(i, 10)
bar("done".__len__() / 4, "writing")
bar.close()
"""


def _run(tty: bool) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not tty:
        r = subprocess.run([sys.executable, "-c", DRIVE], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stderr
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    p = subprocess.Popen([sys.executable, "-c", DRIVE], stderr=child, stdout=child, env=env)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert p.wait(60) == 0
    os.close(main)
    return out.decode(errors="replace")


def test_on_a_terminal_the_bar_shows_rate_and_time_left():
    out = _run(tty=True)
    assert "rescale" in out and "100%" in out, out
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, +[\d.]+ ?step/s\]", out), out


def test_off_a_terminal_one_line_per_message():
    lines = _run(tty=False).splitlines()
    assert lines == ["rescale 100% writing"], lines  # the steps carry no message: no line of their own
