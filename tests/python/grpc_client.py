"""A stock Python gRPC client of weft, generated from proto/ with grpcio-tools, used as a
user would: upload a workflow, start it, serve its activity as a Python worker, read the
result, and see the errors a bad request gets.

    python3 tests/python/grpc_client.py --server 127.0.0.1:7233 \
        --component guest-examples/target/components/hello-activity.wasm

Against a server with TLS and tokens: `--ca ca.pem --token weft_...` (server `localhost:PORT`).

Needs `pip install grpcio grpcio-tools`. Exits 0 when every check holds.
"""

import argparse
import importlib
import json
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]


def generate(out: pathlib.Path):
    """Generates weft/v1/weft_pb2*.py from the protos, as a user of the API would."""
    proto_dir = ROOT / "proto"
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    code = protoc.main([
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(proto_dir / "weft" / "v1" / "weft.proto"),
    ])
    if code != 0:
        sys.exit(f"protoc failed on {proto_dir}")
    sys.path.insert(0, str(out))
    return (
        importlib.import_module("weft.v1.weft_pb2"),
        importlib.import_module("weft.v1.weft_pb2_grpc"),
    )


def expect_error(call, code, fragment):
    try:
        call()
    except grpc.RpcError as e:
        assert e.code() == code, f"expected {code}, got {e.code()}: {e.details()}"
        assert fragment in e.details(), f"{fragment!r} not in {e.details()!r}"
        return
    raise AssertionError(f"expected {code}, the call succeeded")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True, help="host:port")
    parser.add_argument("--component", required=True)
    parser.add_argument("--workflow-id", default="python-client-1")
    parser.add_argument("--ca", help="PEM CA of a TLS server")
    parser.add_argument("--token", help="an admin token, for a server with --auth")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pb, rpc = generate(pathlib.Path(tmp))
        if args.ca:
            with open(args.ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
            if args.token:
                credentials = grpc.composite_channel_credentials(
                    credentials, grpc.access_token_call_credentials(args.token)
                )
            channel = grpc.secure_channel(args.server, credentials)
        else:
            channel = grpc.insecure_channel(args.server)
        workflows = rpc.WorkflowServiceStub(channel)
        workers = rpc.WorkerServiceStub(channel)

        with open(args.component, "rb") as f:
            component = f.read()
        uploaded = workflows.UploadModule(
            pb.UploadModuleRequest(workflow_type="GreetingWorkflow", component=component))
        assert len(uploaded.module_id) == 64, uploaded

        started = workflows.StartWorkflow(pb.StartWorkflowRequest(
            workflow_type="GreetingWorkflow",
            workflow_id=args.workflow_id,
            input=json.dumps("Python").encode(),
        ))
        assert started.run_id, started

        # A worker written in Python: poll the activity, answer it.
        polled = workers.PollActivityTask(pb.PollActivityTaskRequest(
            task_queue="hello-activity-task-queue", worker_id="python",
            max_tasks=1, poll_timeout_ms=10_000))
        assert len(polled.tasks) == 1, polled
        task = polled.tasks[0]
        assert task.activity_name == "compose_greeting", task
        assert task.workflow_id == args.workflow_id, task
        arguments = json.loads(task.input)
        greeting = f"{arguments['greeting']}, {arguments['name']}! (from Python)"
        workers.CompleteActivityTask(pb.CompleteActivityTaskRequest(
            task_token=task.task_token, output=json.dumps(greeting).encode()))

        result = workflows.GetWorkflowResult(pb.GetWorkflowResultRequest(
            workflow_id=args.workflow_id, wait=True, wait_timeout_ms=30_000))
        assert result.status == pb.RUN_STATUS_COMPLETED, result
        assert json.loads(result.output) == "Hello, Python! (from Python)", result.output

        history = json.loads(workflows.GetHistory(
            pb.GetHistoryRequest(workflow_id=args.workflow_id)).history_json)
        kinds = [e["type"] for e in history["events"]]
        assert kinds == ["RunStarted", "ActivityScheduled", "ActivityCompleted",
                         "RunCompleted"], kinds

        # Bad requests get the right code and a message that says what to fix.
        expect_error(lambda: workflows.StartWorkflow(pb.StartWorkflowRequest(
            workflow_type="NoSuchType", workflow_id="x", input=b"null")),
            grpc.StatusCode.NOT_FOUND, "NoSuchType")
        expect_error(lambda: workflows.StartWorkflow(pb.StartWorkflowRequest(
            workflow_type="GreetingWorkflow", input=b"null")),
            grpc.StatusCode.INVALID_ARGUMENT, "workflow_id")
        expect_error(lambda: workflows.UploadModule(pb.UploadModuleRequest(
            workflow_type="Garbage", component=b"not wasm")),
            grpc.StatusCode.INVALID_ARGUMENT, "component")
        expect_error(lambda: workers.CompleteActivityTask(pb.CompleteActivityTaskRequest(
            task_token=task.task_token, output=b"1")),
            grpc.StatusCode.NOT_FOUND, "unknown task token")
    print("python grpc client: all checks passed")


if __name__ == "__main__":
    main()
