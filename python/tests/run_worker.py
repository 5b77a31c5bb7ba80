"""A worker process for the tests: `run_worker.py URL QUEUE [DRAIN_TIMEOUT_S]` serves every
activity of `activities.py` on QUEUE until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from activities import ALL  # noqa: E402

from weft import Client, Worker  # noqa: E402


async def main(url: str, queue: str, drain: float) -> None:
    client = await Client.connect(url)
    worker = Worker(client, task_queue=queue, activities=ALL, drain_timeout=drain)
    print("polling", flush=True)
    await worker.run()
    print("stopped", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    drain = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
    asyncio.run(main(sys.argv[1], sys.argv[2], drain))
