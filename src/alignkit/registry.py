"""A tiny registry for named things (attacks, defences, judges, conditions, datasets, CTE generators).

A new component is one new file that decorates its class or factory with ``@REGISTRY.register("name")``;
the package imports the file so the name is known. Unknown names raise :class:`AlignkitError` listing
the known ones.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from alignkit.errors import AlignkitError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            try:
                setattr(obj, "registry_name", name)
            except (AttributeError, TypeError):
                pass
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise AlignkitError(f"unknown {self.kind} {name!r}; choose one of: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
