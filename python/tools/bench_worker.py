"""Tasks per second of one Python worker next to one weft-worker (Rust), on trivial activities.

    cargo build --release -p weft -p weft-worker --example hello_activity_worker
    cargo run --release -p weft -- build guest-examples
    python/.venv/bin/python python/tools/bench_worker.py [--n 1000] [--rounds 3]

A `weft server` (release build, fresh SQLite file) runs the fan-out example: one workflow
starts N `square` activities at once; each worker in turn serves them with 100 slots, rounds
alternating so drift hits both. Figures: N / (workflow start -> result), which the server
bounds as much as the worker, and the worker's own CPU time per task (the Python worker's is
this process's, which also runs the client's few calls; the Rust worker's is its process's).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from weft import Client, Worker, activity

ROOT = Path(__file__).resolve().parents[2]


@activity.defn(name="square")
async def square(i: int) -> int:
    return i * i


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def fan_out(client: Client, n: int, run: str) -> float:
    started = time.perf_counter()
    handle = await client.start_workflow("FanOut", {"n": n}, id=run)
    result = await handle.result(timeout=600)
    assert result["sum"] == sum(i * i for i in range(n)), result
    return n / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [args.weft, "server", "--listen", f"127.0.0.1:{port}",
             "--database", f"sqlite:{tmp}/weft.db"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            client = await Client.connect(url)
            await client.upload_module("FanOut", Path(args.components) / "fan-out.wasm")
            figures: dict[str, list[float]] = {"python": [], "rust": []}
            cpu: dict[str, list[float]] = {"python": [], "rust": []}
            for round in range(args.rounds):
                worker = Worker(client, task_queue="default", activities=[square],
                                max_concurrent=100)
                running = asyncio.ensure_future(worker.run(handle_signals=False))
                before = time.process_time()
                figures["python"].append(await fan_out(client, args.n, f"py-{round}"))
                cpu["python"].append((time.process_time() - before) / args.n * 1000)
                worker.shutdown()
                await running

                rust = subprocess.Popen(
                    [args.rust_worker, url, "--queue", "default", "--concurrency", "100"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                before = children.ru_utime + children.ru_stime
                try:
                    # Connecting and the first poll are the worker's start-up, not its work.
                    await asyncio.sleep(0.5)
                    figures["rust"].append(await fan_out(client, args.n, f"rust-{round}"))
                finally:
                    rust.send_signal(signal.SIGINT)
                    rust.wait()
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                used = children.ru_utime + children.ru_stime - before
                cpu["rust"].append(used / args.n * 1000)
            for name, values in figures.items():
                print(
                    f"{name:>6}: {statistics.mean(values):7.0f} tasks/s "
                    f"(rounds: {', '.join(f'{v:.0f}' for v in values)}); "
                    f"worker CPU {statistics.mean(cpu[name]):.3f} ms/task"
                )
            ratio = statistics.mean(figures["rust"]) / statistics.mean(figures["python"])
            print(f"weft-worker / Python worker: {ratio:.2f}x")
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--weft", default=str(ROOT / "target/release/weft"))
    p.add_argument(
        "--rust-worker", default=str(ROOT / "target/release/examples/hello_activity_worker")
    )
    p.add_argument("--components", default=str(ROOT / "guest-examples/target/components"))
    asyncio.run(main(p.parse_args()))
    sys.exit(0)
