"""The shape of the service layer: every public `Store` method has one home.

`Store` is composed of mixins. A public method defined by two of them means one silently
overrides the other, and a reader of either sees only half of the rule.
"""

from __future__ import annotations

from registrum.store import Store


def _owners() -> dict[str, list[str]]:
    owners: dict[str, list[str]] = {}
    for cls in Store.__mro__:
        if cls is object:
            continue
        for name in cls.__dict__:
            if not name.startswith("_"):
                owners.setdefault(name, []).append(f"{cls.__module__}.{cls.__qualname__}")
    return owners


def test_each_public_method_is_defined_by_exactly_one_class() -> None:
    twice = {name: where for name, where in _owners().items() if len(where) > 1}
    assert twice == {}, f"public methods defined by more than one class: {twice}"


def test_the_alias_moves_have_one_home() -> None:
    owners = _owners()
    assert owners["set_alias"] == ["registrum.store.registry.aliases.AliasesMixin"]
    assert owners["register_model_version"] == ["registrum.store.registry.versions.RegistryMixin"]
    assert len(owners) > 80  # the check sees the whole store, not an empty class
