"""A small name -> object registry that refuses duplicates and lists its keys in errors."""
from typing import Callable, Dict, Generic, Iterator, TypeVar

from distill.core.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to classes or functions. Register explicitly; nothing registers on import.

    >>> LOSSES = Registry("loss")
    >>> @LOSSES.register("mse")
    ... def mse(a, b): ...
    >>> LOSSES.get("mse") is mse
    True
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise KeyError(f"{self.kind} '{name}' is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} '{name}'; choose one of: {', '.join(sorted(self._items))}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self):
        return list(self._items)
