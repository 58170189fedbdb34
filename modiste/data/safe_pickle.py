"""Load pickles without running their code.

A pickle names the callables that rebuild its objects, and a naive `pickle.load` (or
`np.load(..., allow_pickle=True)`) calls them: a crafted file can run anything. Every pickled
file modiste reads goes through `RestrictedUnpickler`, which allows only plain containers,
numbers, strings, bytes, and numpy arrays and scalars, and refuses any other global by name.

>>> release = load_npy("train.npy")          # an .npy of a pickled dict, e.g. DiFashion's
>>> release.item()["uids"][:3]
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from modiste.data.errors import DatasetError

# (module, name) pairs a pickle may reference. numpy 1.x pickles say numpy.core, numpy 2.x
# numpy._core: both resolve to the installed numpy. Containers and numbers need no global
# (they have opcodes) except these few, which Python 2 and protocol 0-2 pickles name.
_ALLOWED = {
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "bytes"), ("builtins", "str"),
    ("builtins", "int"), ("builtins", "float"), ("builtins", "complex"), ("builtins", "bool"),
    ("builtins", "slice"), ("builtins", "range"),
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("_codecs", "encode"),  # how protocol 2 stores bytes written by Python 3
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}
_PY2_NAMES = {("__builtin__", n): ("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset",
                                                             "bytearray", "str", "int", "float", "complex",
                                                             "bool", "slice")}
_PY2_NAMES[("__builtin__", "long")] = ("builtins", "int")
_PY2_NAMES[("__builtin__", "unicode")] = ("builtins", "str")


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class UnsafePickleError(DatasetError):
    """A pickle asked for something outside the allowed plain types."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allowed globals; anything else raises `UnsafePickleError`."""

    def __init__(self, file: BinaryIO, *, source: str, encoding: str = "ASCII"):
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        module, name = _PY2_NAMES.get((module, name), (module, name))
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(
                self.source, f"refused to load: the pickle asks for {module}.{name}, which is not a plain "
                "container, number, string, bytes or numpy array; a pickle can run code when loaded",
                field="pickle")
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):]
        return super().find_class(module, name)


def loads(data: bytes, *, source: str, encoding: str = "ASCII") -> Any:
    return _load(io.BytesIO(data), source, encoding)


def load(path: str | Path, *, encoding: str = "ASCII") -> Any:
    """Unpickle a plain pickle file safely."""
    with open(path, "rb") as f:
        return _load(f, Path(path).name, encoding)


def load_npy(path: str | Path, *, encoding: str = "ASCII", source: str | None = None) -> np.ndarray:
    """`np.load(path, allow_pickle=True)` without running code: object arrays are unpickled safely.

    `encoding="bytes"` reads Python 2 pickles with their str keys as bytes, as numpy's own
    `encoding` argument does. Arrays of plain dtypes are read as usual.
    """
    source = source or Path(path).name
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = _HEADER_READERS.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = read_header(f)
        except (ValueError, EOFError) as e:
            raise DatasetError(source, f"not a .npy file ({e})") from None
        if not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        array = _load(f, source, encoding)
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise DatasetError(source, f"the pickled array does not match the header (shape {shape})")
    return array


def _load(f: BinaryIO, source: str, encoding: str) -> Any:
    try:
        return RestrictedUnpickler(f, source=source, encoding=encoding).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            UnicodeDecodeError, MemoryError, OverflowError) as e:
        raise DatasetError(source, f"the pickle is corrupt or truncated ({type(e).__name__}: {e})") from None
