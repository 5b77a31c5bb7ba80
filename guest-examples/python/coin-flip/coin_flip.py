"""The example Temporal's docs forbid, correct on weft: `random` draws from the run's seed,
so a replay takes the same branch."""

import random
import time

from weft import workflow


@workflow.defn(name="CoinFlip")
class CoinFlip:
    @workflow.run
    async def run(self, flips: int) -> dict[str, object]:
        slept = []
        started = time.time()
        for _ in range(flips):
            if random.choice([True, False]):
                await workflow.sleep(10)
                slept.append(True)
            else:
                slept.append(False)
        return {"slept": slept, "seconds": time.time() - started}
