"""A test guest for weft.workflow: one workflow whose input picks what it exercises."""

import asyncio
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from weft import workflow


@dataclass
class Greeting:
    greeting: str
    name: str


@workflow.defn(name="SdkProbe")
class SdkProbe:
    @workflow.run
    async def run(self, case: dict[str, Any]) -> Any:
        what = case["case"]
        if what == "gather":
            return await self.gather()
        if what == "cancel-activity":
            pending = workflow.start_activity("slow", None)
            pending.cancel()
            try:
                await pending
            except asyncio.CancelledError:
                return "activity cancelled"
            return "activity completed"
        if what == "cancel-sleep":
            sleeper = asyncio.create_task(asyncio.sleep(60))
            await asyncio.sleep(0)
            sleeper.cancel()
            try:
                await sleeper
            except asyncio.CancelledError:
                return "sleep cancelled"
            return "slept"
        if what == "signal":
            first = await workflow.wait_signal("approve")
            second = await workflow.wait_signal("approve")
            return [first, second]
        if what == "child":
            return await workflow.execute_child_workflow("SdkProbe", {"case": "leaf"}, id="leaf-1")
        if what == "nap":
            # Asleep across a server crash, then an activity on the hello workers' queue.
            await asyncio.sleep(case.get("seconds", 2))
            return await workflow.execute_activity(
                "compose_greeting",
                Greeting("Hello", workflow.info().workflow_id),
                task_queue="hello-activity-task-queue",
                start_to_close_timeout=timedelta(seconds=10),
            )
        if what == "rust-child":
            # A Rust child (the hello-activity example) of this Python parent.
            return await workflow.execute_child_workflow(
                "GreetingWorkflow", "from Python", id=workflow.info().workflow_id + "-child"
            )
        if what == "activities":
            # `n` activities one after another: the replay benchmark's history.
            total = 0
            for i in range(case["n"]):
                total += await workflow.execute_activity("step", i, result_type=int)
            return total
        if what == "leaf":
            return "leaf of " + workflow.info().workflow_id
        if what == "continue":
            n = workflow.info().run_number
            if n < 3:
                workflow.continue_as_new({"case": "continue"})
            return n
        if what == "patched":
            return workflow.patched("v2")
        if what == "activity-error":
            try:
                await workflow.execute_activity("fails", None)
            except workflow.ActivityError as e:
                return {"kind": e.kind, "message": e.message}
            return "no error"
        if what == "raise":
            raise KeyError("missing")
        if what == "wait-forever":
            await asyncio.Event().wait()
        raise ValueError(f"unknown case {what!r}")

    async def gather(self) -> Any:
        workflow.logger.info("gathering")
        hello, bye = await asyncio.gather(
            workflow.execute_activity(
                "compose_greeting",
                Greeting("Hello", "World"),
                start_to_close_timeout=timedelta(seconds=10),
            ),
            workflow.execute_activity("compose_greeting", Greeting("Bye", "World")),
        )
        before = workflow.now()
        await asyncio.sleep(2)
        await workflow.sleep(timedelta(seconds=3))
        after = workflow.now()
        # Temporal's docs forbid this; on weft `random` is the run's seeded stream.
        coin = random.choice([True, False])
        if coin:
            await workflow.sleep(10)
        return {
            "greetings": [hello, bye],
            "slept_s": (after - before).total_seconds(),
            "coin": coin,
            "info": workflow.info().workflow_type,
        }
