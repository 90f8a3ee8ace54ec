"""Kehu core: the platform every CRM feature plugs into.

A plugin (built in or third party) is a Python module exposed through the ``kehu.plugins``
entry point group. It carries a :class:`Manifest` named ``MANIFEST`` and implements hooks
marked with :data:`hookimpl`; the hook specifications live in :mod:`kehu.hookspecs`.
"""

import pluggy

#: The version of the API the core offers to plugins. A plugin's manifest states which
#: range of it the plugin supports (``core_api=">=1.0,<2"``).
CORE_API_VERSION = "1.0"

hookimpl = pluggy.HookimplMarker("kehu")
hookspec = pluggy.HookspecMarker("kehu")

from kehu.manifest import Manifest  # noqa: E402  (after the markers: manifest imports nothing back)

__all__ = ["CORE_API_VERSION", "hookimpl", "hookspec", "Manifest"]
