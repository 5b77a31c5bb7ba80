"""Fixtures: a real `weft server` process on a free port and a fresh SQLite file, the guest
components it runs, and worker processes to kill.

The Rust test `runtime/cli/tests/python.rs` runs this suite with WEFT_BIN (the built `weft`
binary) and WEFT_COMPONENTS (the folder of built guest components) set. Run on its own, it
looks for `target/debug/weft` and `guest-examples/target/components/` (made by
`cargo build -p weft` and `cargo run -p weft -- build guest-examples`).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parent


def _weft_bin() -> Path:
    path = Path(os.environ.get("WEFT_BIN") or ROOT / "target" / "debug" / "weft")
    if not path.exists():
        pytest.fail(f"no weft binary at {path}: run `cargo build -p weft` or set WEFT_BIN")
    return path


def component(name: str) -> Path:
    """The built guest component `name` (e.g. `edge-cases`)."""
    folder = Path(
        os.environ.get("WEFT_COMPONENTS") or ROOT / "guest-examples" / "target" / "components"
    )
    path = folder / f"{name}.wasm"
    if not path.exists():
        pytest.fail(
            f"no component {path}: run `cargo run -p weft -- build guest-examples` "
            "or set WEFT_COMPONENTS"
        )
    return path


_PORTS = itertools.count((os.getpid() * 37) % 12_000)


def free_port() -> int:
    """A port below the kernel's ephemeral range (32768-60999 on Linux) that this process has
    not handed out: no client socket can take it before the server binds it."""
    for n in _PORTS:
        port = 20_000 + n % 12_000
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left below the ephemeral range")


class Server:
    """A `weft server` process; `kill()` is SIGKILL, `start()` brings it back on the same
    port and database."""

    def __init__(self, database: Path, port: int, log: Path) -> None:
        self.database = database
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.extra_flags: list[str] = []

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(_weft_bin()),
                    "server",
                    "--listen",
                    f"127.0.0.1:{self.port}",
                    "--database",
                    f"sqlite:{self.database}",
                    *self.extra_flags,
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"weft server exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"weft server did not come up on {self.url}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def weft(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs the `weft` CLI against this server."""
        return subprocess.run(
            [str(_weft_bin()), "--server", self.url, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "weft.db", free_port(), tmp_path / "server.log")
    s.start()
    yield s
    s.kill()


class WorkerProcess:
    """`tests/run_worker.py` in a process of its own, for tests that kill or signal it."""

    def __init__(self, url: str, queue: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(TESTS / "run_worker.py"), url, queue, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> tuple[int, str]:
        out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, out.decode(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def worker_processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.kill()
