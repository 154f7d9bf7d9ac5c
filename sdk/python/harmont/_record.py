"""Immutable value objects that behave like frozen dataclasses.

Harmont models steps, cache policies, triggers and toolchain objects as
``@dataclass(frozen=True)`` classes. Importing :mod:`dataclasses` costs more
than the rest of the SDK together, so these classes derive from
:class:`Record` instead: fields live in ``__slots__``, assignment raises
:class:`dataclasses.FrozenInstanceError` (the module is imported only then),
and equality, hashing and ``repr`` follow the dataclass rules: equal when of
the same class with equal fields in order, hashed by the field tuple,
``Name(field=value, ...)``. ``dataclasses.replace``, ``fields``, ``asdict``
and ``is_dataclass`` work on them too: ``__dataclass_fields__`` is built, and
:mod:`dataclasses` imported, the first time something asks for it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


def _frozen(message: str) -> NoReturn:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(message)


#: Sets a slot of a record, bypassing the frozen ``__setattr__``.
set_field = object.__setattr__


class _DataclassFields:
    """``__dataclass_fields__`` of a record class, made on first access."""

    def __get__(self, obj: object, cls: type[Record]) -> dict[str, Any]:
        made: dict[str, Any] | None = cls.__dict__.get("_dataclass_fields_made")
        if made is None:
            import dataclasses

            made = {}
            for name in cls._fields:
                field: Any = dataclasses.field(init=name in cls._init_fields())
                field.name, field.type = name, "Any"
                field._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
                made[name] = field
            type.__setattr__(cls, "_dataclass_fields_made", made)
        return made


class Record:
    """Base of the SDK's frozen value classes; subclasses list their ``_fields``."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    __dataclass_fields__ = _DataclassFields()

    def __init_subclass__(cls) -> None:
        # What a dataclass offers for positional patterns: `case Step("make"):`.
        type.__setattr__(cls, "__match_args__", cls._init_fields())

    def __setattr__(self, name: str, value: object) -> None:
        _frozen(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        _frozen(f"cannot delete field {name!r}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def _replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (what ``dataclasses.replace`` does)."""
        values = {name: getattr(self, name) for name in self._init_fields()}
        values.update(changes)
        return self.__class__(**values)

    @classmethod
    def _init_fields(cls) -> tuple[str, ...]:
        """The fields ``__init__`` takes, in order."""
        return cls._fields

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            assert isinstance(other, Record)
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        # A step's repr holds its parent's: guard against a record that (through
        # object.__setattr__) was made to contain itself.
        key = id(self)
        if key in _REPR_ACTIVE:
            return "..."
        _REPR_ACTIVE.add(key)
        try:
            fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        finally:
            _REPR_ACTIVE.discard(key)
        return f"{self.__class__.__qualname__}({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.__class__, {n: getattr(self, n) for n in self._init_fields()}))


_REPR_ACTIVE: set[int] = set()


def _rebuild(cls: type[Record], values: dict[str, Any]) -> Record:
    return cls(**values)
