"""System checks: each misconfiguration gives its id and hint, and `check` exits non-zero."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import models
from django.test import override_settings
from django.test.utils import isolate_apps

from servicebus.checks import models_without_topic, settings_problems
from servicebus.conf import Settings

# The checks read DATABASES; nothing here opens a connection.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")

REDIS_LAYER = {"default": {"BACKEND": "servicebus.layers.RedisChannelLayer", "CONFIG": {}}}
GOOD_DB = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "OPTIONS": {"transaction_mode": "IMMEDIATE"},
    }
}
GOOD = {
    "CHANNEL_LAYERS": REDIS_LAYER,
    "DATABASES": GOOD_DB,
    "SERVICEBUS": {"SERVICE_NAME": "tests"},
}


def run_check() -> str:
    """Run `manage.py check`; the SystemCheckError text, or '' when it passes."""
    out = io.StringIO()
    try:
        call_command("check", tags=["servicebus"], stdout=out, stderr=out)
    except SystemCheckError as exc:
        return str(exc)
    return out.getvalue()


def test_good_setup_passes() -> None:
    with override_settings(**GOOD):
        text = run_check()
    assert "servicebus." not in text


def test_timeout_as_text_is_an_error_with_a_hint() -> None:
    with override_settings(**{**GOOD, "SERVICEBUS": {"DEFAULT_TIMEOUT": "five"}}):
        text = run_check()
    assert "servicebus.E003" in text
    assert "DEFAULT_TIMEOUT" in text and "'five'" in text
    assert "HINT" in text and "default is 5.0" in text


@pytest.mark.parametrize(
    ("value", "ok"),
    [(5, True), (2.5, True), (True, False), (0, False), (-1.0, False), (float("nan"), False)],
)
def test_timeout_values(value: object, ok: bool) -> None:
    _, problems = settings_problems(Settings, {"DEFAULT_TIMEOUT": value}, "SERVICEBUS")
    assert (problems == []) is ok


def test_misspelt_keys_in_both_settings() -> None:
    bad = {**GOOD, "SERVICEBUS": {"DEFAULT_TIMOUT": 2}, "SERVICEBUS_OUTBOX": {"MAXLEN": 5}}
    with override_settings(**bad):
        text = run_check()
    assert "servicebus.E002" in text and "DEFAULT_TIMOUT" in text
    assert "servicebus.E004" in text and "'MAXLEN'" in text and "STREAM_MAXLEN" in text


def test_outbox_wrong_type() -> None:
    with override_settings(**{**GOOD, "SERVICEBUS_OUTBOX": {"PUBLISH_ON_COMMIT": "yes"}}):
        text = run_check()
    assert "servicebus.E005" in text and "PUBLISH_ON_COMMIT" in text


def test_settings_not_a_dict() -> None:
    with override_settings(**{**GOOD, "SERVICEBUS": ["SERVICE_NAME"]}):
        text = run_check()
    assert "servicebus.E003" in text and "must be a dict" in text


def test_channels_before_servicebus() -> None:
    apps = ["channels", "servicebus", "django.contrib.contenttypes"]
    with override_settings(**GOOD, INSTALLED_APPS=apps):
        text = run_check()
    assert "servicebus.E001" in text and "move 'servicebus' above 'channels'" in text
    with override_settings(**GOOD, INSTALLED_APPS=["servicebus", "channels"]):
        assert "servicebus.E001" not in run_check()


def test_layer_alias_missing() -> None:
    with override_settings(**{**GOOD, "SERVICEBUS": {"CHANNEL_LAYER": "bus"}}):
        text = run_check()
    assert "servicebus.E006" in text and "'bus'" in text


def test_in_memory_layer_without_debug_warns() -> None:
    memory = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(**{**GOOD, "CHANNEL_LAYERS": memory}, DEBUG=False):
        assert "servicebus.W001" in run_check()
    with override_settings(**{**GOOD, "CHANNEL_LAYERS": memory}, DEBUG=True):
        assert "servicebus.W001" not in run_check()


def test_sqlite_without_immediate_warns_when_outbox_installed() -> None:
    plain = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    with override_settings(**{**GOOD, "DATABASES": plain}):
        text = run_check()
    assert "servicebus.W002" in text and "transaction_mode" in text


def test_errors_make_check_exit_non_zero() -> None:
    with (
        override_settings(**{**GOOD, "SERVICEBUS": {"DEFAULT_TIMEOUT": "five"}}),
        pytest.raises(SystemCheckError),
    ):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())


@isolate_apps("tests.integration.outbox.testapp")
def test_replication_model_without_topic() -> None:
    from servicebus.outbox.source import SourceModel

    class NoTopic(SourceModel):
        name = models.CharField(max_length=10)

        class Meta:
            app_label = "testapp"

    class WithTopic(SourceModel):
        class Replication:
            topic = "tests.with_topic"

        class Meta:
            app_label = "testapp"

    errors = models_without_topic([NoTopic, WithTopic])
    assert [e.id for e in errors] == ["servicebus.E007"]
    assert "NoTopic" in errors[0].msg and "Replication" in (errors[0].hint or "")


def test_manage_py_check_exits_non_zero_with_ids_not_a_traceback() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    settings = "tests.unit.telemetry.bad_settings"
    done = subprocess.run(
        [sys.executable, "-m", "django", "check", "--settings", settings],
        cwd=root, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    for code in ("servicebus.E001", "servicebus.E002", "servicebus.E003"):
        assert code in done.stderr
    assert "Traceback" not in done.stderr
