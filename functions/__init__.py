"""Binding glue: each module adapts Azure Functions triggers and bindings to ``shared``."""
