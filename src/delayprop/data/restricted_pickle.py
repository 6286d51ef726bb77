"""Reading a pickle without running code from it: an unpickler with a list of allowed globals.

A pickle names the functions and classes that rebuild its objects ("globals") and the unpickler
calls them; plain ``pickle.load`` therefore runs whatever a file names (``os.system``,
``builtins.exec``, ...).  ``restricted_load`` resolves only the ``(module, name)`` pairs of
``ALLOWED_GLOBALS`` and refuses every other one with ``ValueError`` naming it, before anything
is called.  The list is pinned to single names, never to whole modules (all of ``pandas`` would
allow ``pandas.read_pickle``, which unpickles another file without restriction).

Allowed: builtin containers (no global needed), ``slice``, ``bytes``, ``bytearray``, ``object``,
``_codecs.encode`` (bytes in protocol 2), ``copyreg._reconstructor`` (protocols 0 and 1; it
calls only classes that are themselves on the list), numpy arrays, scalars and dtypes (module
paths of numpy 1 and 2), and the pieces of a pandas DataFrame with an object / string column and
a range or plain index (module paths of pandas 1 to 3).  When pandas is importable the file is
read by pandas' own compatibility unpickler (it renames classes moved between pandas versions),
with the same restriction.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

__all__ = ["ALLOWED_GLOBALS", "restricted_load"]

_NUMPY = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}
_PANDAS = {
    ("pandas", "DataFrame"),
    ("pandas.core.frame", "DataFrame"),
    ("pandas", "Index"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas", "RangeIndex"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.core.indexes.numeric", "Int64Index"),
    ("pandas.core.internals.managers", "BlockManager"),
    ("pandas.core.internals.blocks", "new_block"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
    ("pandas", "StringDtype"),
    ("pandas.core.arrays.string_", "StringDtype"),
    ("pandas.arrays", "StringArray"),
    ("pandas.core.arrays.string_", "StringArray"),
}
#: every global a pickle read by ``restricted_load`` may name
ALLOWED_GLOBALS = frozenset(
    {(m, n) for m in ("builtins", "__builtin__") for n in ("slice", "bytes", "bytearray", "object")}
    | {("_codecs", "encode"), ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor")}
    | _NUMPY
    | _PANDAS
)


def _base() -> type:
    """pandas' compatibility unpickler when pandas imports, else the standard one."""
    try:
        from pandas.compat.pickle_compat import Unpickler
    except ImportError:
        return pickle.Unpickler
    return Unpickler if issubclass(Unpickler, pickle._Unpickler) else pickle.Unpickler


def _unpickler(file: IO[bytes]) -> pickle.Unpickler:
    base = _base()

    class Restricted(base):  # type: ignore[misc, valid-type]
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in ALLOWED_GLOBALS:
                raise ValueError(
                    f"refused to load global {module}.{name}: the file names a function or "
                    "class outside the allowed list (numpy arrays, a pandas DataFrame); it is "
                    "not the expected data and would run code if unpickled"
                )
            if module.split(".")[0] == "pandas" and base is pickle.Unpickler:
                raise ModuleNotFoundError(f"No module named {module!r}", name="pandas")
            return super().find_class(module, name)

    return Restricted(file)


def restricted_load(file: IO[bytes]) -> Any:
    """Unpickle ``file`` (opened in binary mode) allowing only ``ALLOWED_GLOBALS``.

    Raises ``ValueError`` naming the first global outside the list, ``ModuleNotFoundError``
    (``name='pandas'``) for a DataFrame when pandas is not installed, and the unpickler's own
    errors for a corrupt file.
    """
    return _unpickler(file).load()
