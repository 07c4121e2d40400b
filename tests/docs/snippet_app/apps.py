"""App config for models defined by documentation snippets."""

from django.apps import AppConfig


class DocsSnippetsConfig(AppConfig):
    """Models a page's blocks define register here; the runner creates their tables."""

    name = "tests.docs.snippet_app"
    label = "docs"
    default_auto_field = "django.db.models.BigAutoField"
