"""Temporal's hello_activity.py, ported line for line to weft (python/README.md shows both)."""

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from weft import activity, workflow


# While we could use multiple parameters in the activity, it's a best practice to use a
# single dataclass so fields can be added in the future.
@dataclass
class ComposeGreetingInput:
    greeting: str
    name: str


# Basic activity that logs and does string concatenation
@activity.defn
def compose_greeting(input: ComposeGreetingInput) -> str:
    return f"{input.greeting}, {input.name}!"


# Basic workflow that logs and invokes an activity
@workflow.defn
class GreetingWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        workflow.logger.info("Running workflow with parameter %s" % name)
        return await workflow.execute_activity(
            compose_greeting,
            ComposeGreetingInput("Hello", name),
            start_to_close_timeout=timedelta(seconds=10),
        )


async def main() -> None:
    # The client and the worker run outside the component (they need grpcio).
    from weft import Client, Worker

    # Start client
    client = await Client.connect("http://127.0.0.1:7233")
    # The component `weft build guest-examples/python/hello-activity` wrote
    await client.upload_module("GreetingWorkflow", "hello-activity.wasm")

    # Run a worker for the activities
    worker = Worker(
        client,
        task_queue="hello-activity-task-queue",
        activities=[compose_greeting],
    )
    polling = asyncio.create_task(worker.run(handle_signals=False))

    # While the worker is running, use the client to run the workflow and print out its result.
    handle = await client.start_workflow(
        "GreetingWorkflow",
        "World",
        id="hello-activity-workflow-id",
        task_queue="hello-activity-task-queue",
    )
    print(f"Result: {await handle.result()}")
    worker.shutdown()
    await polling


if __name__ == "__main__":
    asyncio.run(main())
