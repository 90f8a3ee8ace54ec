"""Test plugin that fails at import."""

raise RuntimeError("mod_raises cannot be imported (on purpose)")
