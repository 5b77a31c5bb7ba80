"""A test guest: Python's own clock, random, uuid, environment, print, sleep, exit,
sockets and files, each answered by weft's deterministic WASI layer.

The input names the probe: {"probe": "all" | "sleep" | "exit" | "raise" | "socket" | "open"}.
"""

import datetime
import json
import os
import random
import socket
import sys
import time
import uuid

import wit_world
from wit_world.imports import host


def everything() -> dict:
    print("hello", 1, "from python")
    print("to stderr", file=sys.stderr)
    wall_before = time.time()
    mono_before = time.monotonic()
    timer = host.start_timer(5000)
    host.wait_any([timer])
    wall_after = time.time()
    mono_after = time.monotonic()
    return {
        "wall_before": wall_before,
        "wall_after": wall_after,
        "mono_elapsed": mono_after - mono_before,
        "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "random": random.random(),
        "choice": random.choice(["a", "b", "c", "d"]),
        "uuid": str(uuid.uuid4()),
        "environ": dict(os.environ),
        "argv": sys.argv,
    }


def open_a_file() -> dict:
    try:
        open("/etc/passwd").read()
    except OSError as e:
        return {"error": type(e).__name__}
    return {"error": None}


class WitWorld(wit_world.WitWorld):
    def run(self, input: bytes) -> bytes:
        probe = json.loads(input or b"{}").get("probe", "all")
        if probe == "sleep":
            time.sleep(1.5)
        elif probe == "exit":
            sys.exit(3)
        elif probe == "raise":
            raise ValueError("bad input: 42")
        elif probe == "socket":
            socket.socket().connect(("192.0.2.1", 80))
        elif probe == "open":
            return json.dumps(open_a_file()).encode()
        return json.dumps(everything()).encode()
