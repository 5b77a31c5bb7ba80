"""The one connection to a weft server that clients and workers share: channel, TLS, token,
and the mapping of gRPC failures to :mod:`weft.errors`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import grpc
import grpc.aio

from weft.errors import from_rpc_error
from weft.v1 import weft_pb2_grpc

T = TypeVar("T")

# Modules are uploaded in one message; the server's own cap is what limits them.
_MAX_MESSAGE = 256 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class TLSConfig:
    """TLS settings for an ``https://`` server, as PEM bytes or paths to PEM files.

    ``ca``: the certificate authority that signed the server's certificate (the system's
    roots when None); ``cert`` and ``key``: this client's certificate, when the server asks
    for one (mTLS); ``server_name``: the name to check the server's certificate against, when
    it differs from the host in the URL.
    """

    ca: bytes | str | Path | None = None
    cert: bytes | str | Path | None = None
    key: bytes | str | Path | None = None
    server_name: str | None = None

    @staticmethod
    def from_env() -> TLSConfig | None:
        """``WEFT_CA``, ``WEFT_CERT``, ``WEFT_KEY`` (paths), as the CLI and ``weft-worker`` read
        them; None when none is set."""
        ca, cert, key = (os.environ.get(n) for n in ("WEFT_CA", "WEFT_CERT", "WEFT_KEY"))
        if not (ca or cert or key):
            return None
        return TLSConfig(ca=_path(ca), cert=_path(cert), key=_path(key))


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _pem(value: bytes | str | Path | None, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read the {what} PEM file {value}: {e.strerror}") from e


class Connection:
    """A channel to one server with its stubs; every call goes through :meth:`call`."""

    def __init__(self, url: str, token: str | None, tls: TLSConfig | bool | None) -> None:
        if "://" not in url:
            url = "http://" + url
        scheme, _, target = url.partition("://")
        target = target.rstrip("/")
        if scheme not in ("http", "https"):
            raise ValueError(f"server URL {url!r}: the scheme must be http:// or https://")
        if not target:
            raise ValueError(f"server URL {url!r} has no host")
        if ":" not in target.rsplit("]", 1)[-1]:
            target += ":443" if scheme == "https" else ":80"
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            # gRPC's own reconnect backoff grows to 120 s; a restarted server should be
            # found within a second or two.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        if tls is None and scheme == "https":
            tls = True
        if tls is True:
            tls = TLSConfig()
        if isinstance(tls, TLSConfig):
            if tls.server_name:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_pem(tls.ca, "CA"),
                private_key=_pem(tls.key, "client key"),
                certificate_chain=_pem(tls.cert, "client certificate"),
            )
            self.channel = grpc.aio.secure_channel(target, credentials, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=options)
        self.url = url
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self.workflows = weft_pb2_grpc.WorkflowServiceStub(self.channel)
        self.workers = weft_pb2_grpc.WorkerServiceStub(self.channel)

    async def call(
        self,
        method: Callable[..., Awaitable[T]],
        request: Any,
        *,
        timeout: float | None = None,
        wait_for_ready: bool = False,
    ) -> T:
        """Calls ``method`` (a stub attribute) with the token; failures become WeftErrors.

        ``wait_for_ready``: while the server is unreachable, wait for it (up to ``timeout``)
        instead of failing at once, for calls that are meant to outlast a restart.
        """
        try:
            return await method(
                request, metadata=self.metadata, timeout=timeout, wait_for_ready=wait_for_ready
            )
        except grpc.aio.AioRpcError as e:
            name = type(request).__name__.removesuffix("Request")
            raise from_rpc_error(e, name) from None

    async def close(self) -> None:
        await self.channel.close()

