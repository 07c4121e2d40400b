"""Host entries as channels_redis and redis-py accept them, parsed into HostSpec."""

from __future__ import annotations

import ssl

import pytest

from servicebus.layers.hosts import HostSpec, decode_hosts, parse_host, parse_url


def test_decode_hosts_is_channels_redis_shape() -> None:
    assert decode_hosts(None) == [{"address": "redis://localhost:6379"}]
    assert decode_hosts([("h", 1), "redis://x", {"host": "y"}]) == [
        {"host": "h", "port": 1},
        {"address": "redis://x"},
        {"host": "y"},
    ]
    with pytest.raises(ValueError, match="list"):
        decode_hosts("redis://x")


def test_url_with_credentials_db_and_options() -> None:
    spec = parse_host({"address": "redis://al%40ce:p%3Ass@10.0.0.1:6380/3?socket_timeout=0.5"})
    assert (spec.host, spec.port, spec.db) == ("10.0.0.1", 6380, 3)
    assert (spec.username, spec.password) == ("al@ce", "p:ss")
    assert spec.socket_timeout == 0.5
    assert spec.ssl is None
    assert parse_url("redis://:secret@h")["password"] == "secret"
    assert parse_host({"address": "redis://h/0?db=5"}).db == 5


def test_explicit_options_win_over_the_url() -> None:
    spec = parse_host({"address": "redis://u:p@h:1/2", "password": "other", "db": 4})
    assert (spec.password, spec.db) == ("other", 4)


def test_unix_socket_url() -> None:
    spec = parse_host({"address": "unix:///run/redis.sock?db=2"})
    assert (spec.path, spec.db) == ("/run/redis.sock", 2)
    assert spec.describe() == "unix:/run/redis.sock"


def test_rediss_builds_a_verifying_context() -> None:
    spec = parse_host({"address": "rediss://h:6379"})
    assert isinstance(spec.ssl, ssl.SSLContext)
    assert spec.ssl.verify_mode == ssl.CERT_REQUIRED
    assert spec.ssl.check_hostname
    lax = parse_host({"address": "rediss://h", "ssl_cert_reqs": "none"})
    assert lax.ssl is not None
    assert lax.ssl.verify_mode == ssl.CERT_NONE
    assert not lax.ssl.check_hostname
    unchecked = parse_host({"address": "rediss://h", "ssl_check_hostname": False})
    assert unchecked.ssl is not None
    assert not unchecked.ssl.check_hostname
    with pytest.raises(ValueError, match="ssl_cert_reqs"):
        parse_host({"address": "rediss://h", "ssl_cert_reqs": "maybe"})


def test_dict_host_and_ignored_and_unknown_options() -> None:
    spec = parse_host({"host": "h", "port": "7", "retry_on_timeout": True, "max_connections": 5})
    assert spec == HostSpec(host="h", port=7)
    with pytest.raises(ValueError, match="socket_timout"):
        parse_host({"host": "h", "socket_timout": 1})
    with pytest.raises(ValueError, match="decode_responses"):
        parse_host({"host": "h", "decode_responses": True})
    with pytest.raises(ValueError, match="redis://"):
        parse_host({"address": "http://h"})


def test_sentinel_entry() -> None:
    spec = parse_host(
        {
            "master_name": "mymaster",
            "sentinels": [("s1", 26379), ("s2", 26380)],
            "sentinel_kwargs": {"password": "spw"},
            "password": "mpw",
            "db": 1,
        }
    )
    assert spec.master_name == "mymaster"
    assert (spec.password, spec.db) == ("mpw", 1)
    assert [(s.host, s.port, s.password) for s in spec.sentinels] == [
        ("s1", 26379, "spw"),
        ("s2", 26380, "spw"),
    ]
    assert spec.describe() == "sentinel master 'mymaster'"
    # Without sentinel_kwargs the sentinels get the socket options only, not the password.
    plain = parse_host(
        {"master_name": "m", "sentinels": [("s", 1)], "password": "x", "socket_timeout": 3}
    )
    assert (plain.sentinels[0].password, plain.sentinels[0].socket_timeout) == (None, 3.0)
    with pytest.raises(ValueError, match="sentinels"):
        parse_host({"master_name": "m"})
