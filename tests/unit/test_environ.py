"""Settings from the environment: DATABASE_URL, REDIS_URL, the layer, logging."""

from __future__ import annotations

import logging.config

import pytest

from servicebus import environ


def test_database_from_url() -> None:
    parse = environ.database_from_url
    sqlite = parse("sqlite:////tmp/x/inventory.sqlite3")
    assert sqlite["ENGINE"] == "django.db.backends.sqlite3"
    assert sqlite["NAME"] == "/tmp/x/inventory.sqlite3"
    assert sqlite["OPTIONS"] == {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
    }
    assert (sqlite["CONN_MAX_AGE"], sqlite["CONN_HEALTH_CHECKS"]) == (60, True)
    assert parse("sqlite:///relative.db")["NAME"] == "relative.db"
    pg = parse("postgres://shop:p%40ss@db.local:6543/inventory", conn_max_age=None)
    assert {k: pg[k] for k in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST")} == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "inventory",
        "USER": "shop",
        "PASSWORD": "p@ss",
        "HOST": "db.local",
    }
    assert str(pg["PORT"]) == "6543"
    assert pg["CONN_MAX_AGE"] is None
    assert parse("postgresql://localhost/x")["PORT"] == ""
    with pytest.raises(ValueError, match="nosuchdb"):
        parse("nosuchdb://localhost/x")


@pytest.mark.filterwarnings("ignore:Accessing the database during app initialization")
def test_sqlite_options_apply_wal_and_persist_connections(tmp_path, django_db_blocker) -> None:
    """The settings reach a real connection: WAL, synchronous=NORMAL (1), IMMEDIATE."""
    from django.db.backends.sqlite3.base import DatabaseWrapper

    config = environ.database_from_url(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    db = DatabaseWrapper(
        {**config, "TIME_ZONE": None, "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False, "TEST": {}}, "x"
    )
    # A connection of our own, not the test database: allowed whatever ran before.
    try:
        with django_db_blocker.unblock(), db.cursor() as cursor:
            assert cursor.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert cursor.execute("PRAGMA synchronous").fetchone() == (1,)
        assert db.transaction_mode == "IMMEDIATE"
    finally:
        db.close()


def test_channel_layers_from_env() -> None:
    layers = environ.channel_layers({"REDIS_URL": "redis://r:1/2", "CHANNEL_CAPACITY": "7"})
    assert layers["default"]["BACKEND"] == "servicebus.layers.RedisChannelLayer"
    assert layers["default"]["CONFIG"] == {"hosts": ["redis://r:1/2"], "capacity": 7}
    stock = environ.channel_layers({"SERVICEBUS_LAYER_BACKEND": "channels_redis.core.X"})
    assert stock["default"]["BACKEND"] == "channels_redis.core.X"
    assert stock["default"]["CONFIG"]["hosts"] == ["redis://127.0.0.1:6379/0"]


def test_logging_config_prints_the_correlation_id(capsys) -> None:
    import servicebus

    logging.config.dictConfig(environ.logging_config("orders", {"LOG_LEVEL": "INFO"}))
    try:
        with servicebus.bind("cid-42"):
            logging.getLogger("orders.test").info("hello")
        logging.getLogger("orders.test").info("outside")
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    err = capsys.readouterr().err
    assert "orders INFO [cid-42] orders.test: hello" in err
    assert "[-] orders.test: outside" in err


def test_signing_and_encryption_keys_from_env() -> None:
    env = {
        "SERVICEBUS_SIGNING_KEYS": " new-key-0123456789, old-key-0123456789 ,",
        "SERVICEBUS_ENCRYPTION_KEYS": "enc-new,enc-old",
    }
    assert environ.signing_keys(env) == ["new-key-0123456789", "old-key-0123456789"]
    assert environ.signing_keys({}) == []
    config = environ.channel_layers(env)["default"]["CONFIG"]
    assert config["symmetric_encryption_keys"] == ["enc-new", "enc-old"]
    assert "symmetric_encryption_keys" not in environ.channel_layers({})["default"]["CONFIG"]
