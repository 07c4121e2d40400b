"""The Django app that models defined in documentation snippets belong to (label ``docs``)."""
