"""Host settings: the ``hosts`` entries channels_redis accepts, parsed once into HostSpec.

An entry is a URL (``redis://[user[:password]@]host[:port][/db]``, ``rediss://`` for TLS,
``unix:///path.sock?db=0``), a ``(host, port)`` pair, or a dict of redis-py connection
keyword arguments: ``{"address": URL, ...options}``, ``{"host": ..., "port": ...}``, or
``{"master_name": ..., "sentinels": [(host, port), ...], "sentinel_kwargs": {...}}``.
Options this client does not need are accepted and ignored (listed in docs/layer.md);
an unknown option raises ValueError at once instead of being silently lost.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_SOCKET_TIMEOUT = 5.0

# redis-py options that change nothing here (pooling, retries and decoding are the layer's).
IGNORED_OPTIONS = frozenset(
    {
        "max_connections",
        "timeout",
        "retry",
        "retry_on_timeout",
        "retry_on_error",
        "health_check_interval",
        "socket_keepalive_options",
        "socket_type",
        "encoding",
        "encoding_errors",
        "protocol",
        "lib_name",
        "lib_version",
        "single_connection_client",
    }
)

_SSL_OPTIONS = frozenset(
    {
        "ssl",
        "ssl_keyfile",
        "ssl_certfile",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_ca_data",
        "ssl_check_hostname",
        "ssl_password",
        "ssl_min_version",
        "ssl_ciphers",
    }
)

_OPTIONS = _SSL_OPTIONS | {
    "host",
    "port",
    "path",
    "unix_socket_path",
    "db",
    "username",
    "password",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "client_name",
    "decode_responses",
}

_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}

_TRUE = {"1", "true", "yes", "on", "y"}


@dataclasses.dataclass(frozen=True)
class HostSpec:
    """Where one Redis is and how to talk to it (or, for Sentinel, how to find it)."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None  # a unix socket instead of host:port
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: ssl.SSLContext | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    socket_timeout: float | None = DEFAULT_SOCKET_TIMEOUT
    keepalive: bool = True
    client_name: str | None = None
    # Sentinel: the master's name and the sentinels' specs (the fields above apply to the master).
    master_name: str | None = None
    sentinels: tuple[HostSpec, ...] = ()

    def describe(self) -> str:
        """host:port (or the socket path, or the sentinel master name) for messages."""
        if self.master_name is not None:
            return f"sentinel master {self.master_name!r}"
        if self.path is not None:
            return f"unix:{self.path}"
        return f"{self.host}:{self.port}"


def decode_hosts(hosts: Any) -> list[dict[str, Any]]:
    """The ``hosts`` setting as a list of dicts, exactly as channels_redis decodes it."""
    if not hosts:
        return [{"address": "redis://localhost:6379"}]
    if isinstance(hosts, str | bytes):
        raise ValueError("You must pass a list of Redis hosts, even if there is only one.")
    result: list[dict[str, Any]] = []
    for entry in hosts:
        if isinstance(entry, dict):
            result.append(entry)
        elif isinstance(entry, tuple | list):
            result.append({"host": entry[0], "port": entry[1]})
        else:
            result.append({"address": entry})
    return result


def parse_host(entry: Mapping[str, Any]) -> HostSpec:
    """One decoded host entry -> HostSpec (raises ValueError for what cannot work)."""
    options = dict(entry)
    master_name = options.pop("master_name", None)
    if master_name is not None:
        sentinels = options.pop("sentinels", None)
        if not sentinels:
            raise ValueError("a 'master_name' host needs 'sentinels': [(host, port), ...]")
        sentinel_options = dict(options.pop("sentinel_kwargs", None) or {})
        if not sentinel_options:
            # redis-py's default: the sentinels get the master's socket options only.
            sentinel_options = {k: v for k, v in options.items() if k.startswith("socket_")}
        specs = []
        for item in sentinels:
            address = item if isinstance(item, Mapping) else {"host": item[0], "port": item[1]}
            specs.append(_spec({**sentinel_options, **address}))
        master = _spec(options)
        return dataclasses.replace(master, master_name=str(master_name), sentinels=tuple(specs))
    if "address" in options:
        address = options.pop("address")
        # Like redis-py's from_url: explicit options win over the URL's.
        options = {**parse_url(address), **options}
    return _spec(options)


def parse_url(url: str | bytes) -> dict[str, Any]:
    """The options a redis://, rediss:// or unix:// URL carries (query options included)."""
    if isinstance(url, bytes):
        url = url.decode()
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    for name, values in parse_qs(parts.query).items():
        if values:
            options[name] = unquote(values[0])
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    if parts.scheme == "unix":
        options["path"] = unquote(parts.path)
    elif parts.scheme in ("redis", "rediss"):
        if parts.hostname:
            options["host"] = unquote(parts.hostname)
        if parts.port:
            options["port"] = parts.port
        path = parts.path.lstrip("/")
        if path and "db" not in options:
            options["db"] = path
        if parts.scheme == "rediss":
            options["ssl"] = True
    else:
        raise ValueError(f"Redis URL must start with redis://, rediss:// or unix:// (got {url!r})")
    return options


def _spec(options: dict[str, Any]) -> HostSpec:
    unknown = set(options) - _OPTIONS - IGNORED_OPTIONS
    if unknown:
        raise ValueError(f"unsupported Redis host option(s): {', '.join(sorted(unknown))}")
    if _flag(options.get("decode_responses", False)):
        raise ValueError("decode_responses=True is not supported: the layer reads bytes")
    socket_timeout = options.get("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    return HostSpec(
        host=str(options.get("host", "localhost")),
        port=int(options.get("port", 6379)),
        path=options.get("path", options.get("unix_socket_path")),
        db=int(options.get("db", 0) or 0),
        username=options.get("username") or None,
        password=options.get("password") or None,
        ssl=_ssl_context(options) if _flag(options.get("ssl", False)) else None,
        connect_timeout=float(options.get("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
        socket_timeout=None if socket_timeout is None else float(socket_timeout),
        keepalive=_flag(options.get("socket_keepalive", True)),
        client_name=options.get("client_name"),
    )


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


def _ssl_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    """An SSLContext from redis-py's ssl_* options (certificates required by default)."""
    reqs = options.get("ssl_cert_reqs", "required")
    if reqs is None:
        reqs = ssl.CERT_NONE
    elif isinstance(reqs, str):
        if reqs.lower() not in _CERT_REQS:
            raise ValueError(f"ssl_cert_reqs must be none, optional or required (got {reqs!r})")
        reqs = _CERT_REQS[reqs.lower()]
    context = ssl.create_default_context(
        cafile=options.get("ssl_ca_certs"),
        capath=options.get("ssl_ca_path"),
        cadata=options.get("ssl_ca_data"),
    )
    check_hostname = options.get("ssl_check_hostname")
    context.check_hostname = (
        reqs != ssl.CERT_NONE if check_hostname is None else _flag(check_hostname)
    )
    context.verify_mode = ssl.VerifyMode(reqs)
    if options.get("ssl_certfile"):
        context.load_cert_chain(
            options["ssl_certfile"], options.get("ssl_keyfile"), options.get("ssl_password")
        )
    if options.get("ssl_min_version") is not None:
        context.minimum_version = options["ssl_min_version"]
    if options.get("ssl_ciphers"):
        context.set_ciphers(options["ssl_ciphers"])
    return context
