"""The public surface: exported names, version, logging."""

import logging
import types

import muscle_mem

ONE_STORE = True  # nothing here touches a store


def test_all_is_exactly_the_public_names():
    public = {
        name
        for name in dir(muscle_mem)
        if not name.startswith("_") and not isinstance(getattr(muscle_mem, name), types.ModuleType)
    }
    assert set(muscle_mem.__all__) == public | {"__version__"}
    assert muscle_mem.__all__ == sorted(muscle_mem.__all__)


def test_version_is_a_string():
    assert isinstance(muscle_mem.__version__, str) and muscle_mem.__version__.count(".") == 2


def test_library_logger_has_a_null_handler():
    handlers = logging.getLogger("muscle_mem").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_errors_share_one_root_and_misuse_errors_are_builtin_kinds():
    assert issubclass(muscle_mem.ConfigurationError, ValueError)
    assert issubclass(muscle_mem.EncodeError, TypeError)
    for error in (
        muscle_mem.ConfigurationError,
        muscle_mem.EncodeError,
        muscle_mem.DivergenceError,
    ):
        assert issubclass(error, muscle_mem.MuscleMemError)
