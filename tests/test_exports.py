"""Each package's public surface is exactly its `__all__`: adding a name is a decision."""

from __future__ import annotations

import bridge


def test_bridge_exports_exactly_its_public_names() -> None:
    """Every public attribute of `bridge` (modules aside) is listed in `__all__`, and nothing else is."""
    public = {
        name for name in dir(bridge) if not name.startswith("_") and not hasattr(getattr(bridge, name), "__path__")
    }
    modules = {name for name in public if type(getattr(bridge, name)).__name__ == "module"}
    assert sorted(bridge.__all__) == bridge.__all__
    assert public - modules == set(bridge.__all__) - {"__version__"}
