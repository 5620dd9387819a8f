"""Keep a validation offline whatever the environment holds: no socket, no DNS, no AWS credentials.

ParallelCluster's schema builds its model in ``post_load`` and some of that code asks AWS (capacity
reservation resource groups, existing file systems); its validators fetch ``https://`` script URLs.
With credentials or an endpoint in the environment those calls would leave the machine. Inside
:func:`no_network` every outgoing connection and name lookup fails at once with
:class:`NetworkBlocked`, botocore gets throw-away credentials, no profile and no retries, and what
was attempted is recorded so the caller can say "not checked" instead of passing or failing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# The environment botocore reads; replaced inside no_network() and restored after.
# B105: "offline" is a throw-away credential that fences botocore off; None removes a variable.
_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "offline", "AWS_SECRET_ACCESS_KEY": "offline", "AWS_SESSION_TOKEN": None,  # nosec B105
    "AWS_SECURITY_TOKEN": None, "AWS_PROFILE": None, "AWS_DEFAULT_PROFILE": None,  # nosec B105
    "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": None, "AWS_WEB_IDENTITY_TOKEN_FILE": None, "AWS_ROLE_ARN": None,  # nosec B105
    "AWS_ENDPOINT_URL": None, "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard",
    "AWS_CA_BUNDLE": None, "HTTPS_PROXY": None, "HTTP_PROXY": None, "https_proxy": None, "http_proxy": None,
}


class NetworkBlocked(ConnectionRefusedError):
    """Raised by every connect or name lookup inside no_network()."""


@dataclass
class Attempts:
    """What tried to reach the network inside the block."""

    hosts: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.hosts)


def _describe(address: object) -> str:
    if isinstance(address, tuple) and address:
        return ":".join(str(part) for part in address[:2])
    return str(address)


@contextmanager
def no_network(region: str | None = None) -> Iterator[Attempts]:
    """Block the network and fence botocore's configuration for the duration of the block."""
    attempts = Attempts()
    saved_env = {key: os.environ.get(key) for key in _AWS_ENV} | {"AWS_DEFAULT_REGION": os.environ.get(
        "AWS_DEFAULT_REGION"), "AWS_REGION": os.environ.get("AWS_REGION")}
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_")]:
        saved_env[key] = os.environ.get(key)
        os.environ.pop(key)
    for key, value in _AWS_ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
        os.environ["AWS_REGION"] = region
    saved_socket = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo, socket.create_connection)

    def blocked(what: object) -> NetworkBlocked:
        attempts.hosts.append(_describe(what))
        return NetworkBlocked(f"hpctool validates offline: no connection to {_describe(what)}")

    def connect(self: socket.socket, address: object) -> None:
        if self.family == socket.AF_UNIX:
            return saved_socket[0](self, address)
        raise blocked(address)

    def connect_ex(self: socket.socket, address: object) -> int:
        if self.family == socket.AF_UNIX:
            return saved_socket[1](self, address)
        raise blocked(address)

    def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> list:
        raise blocked((host, port))

    def create_connection(address: object, *args: object, **kwargs: object) -> socket.socket:
        raise blocked(address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.create_connection = create_connection  # type: ignore[assignment]
    try:
        yield attempts
    finally:
        (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo,  # type: ignore[method-assign]
         socket.create_connection) = saved_socket
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
