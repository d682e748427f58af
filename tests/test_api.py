"""The public surface: exported names, version, logging. No store: runs once."""

import logging
import types

import muscle_mem


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


def _subclasses(root: type) -> set[type]:
    found = set()
    stack = [root]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub.__module__.startswith("muscle_mem") and sub not in found:
                found.add(sub)
                stack.append(sub)
    return found


def test_every_error_and_warning_class_is_exported_from_the_top_and_errors():
    import muscle_mem.bank  # every module that could define one is loaded
    import muscle_mem.cli
    import muscle_mem.errors
    import muscle_mem.portable
    import muscle_mem.store.sql

    classes = _subclasses(muscle_mem.MuscleMemError) | _subclasses(muscle_mem.MuscleMemWarning)
    assert classes, "the roots have subclasses"
    for cls in classes | {muscle_mem.MuscleMemError, muscle_mem.MuscleMemWarning}:
        assert cls.__module__ == "muscle_mem.errors", cls
        assert getattr(muscle_mem, cls.__name__) is cls
        assert cls.__name__ in muscle_mem.errors.__all__
        assert cls.__name__ in muscle_mem.errors.__doc__, f"{cls.__name__} is not in the tree"


def test_one_status_vocabulary():
    assert [s.value for s in muscle_mem.Status] == ["hit", "miss", "handoff", "error"]
    assert muscle_mem.Status.HIT == "hit" and f"{muscle_mem.Status.MISS:>5}" == " miss"
    assert str(muscle_mem.Status.HANDOFF) == "handoff"


def test_the_package_is_typed():
    from importlib.resources import files

    assert files("muscle_mem").joinpath("py.typed").is_file()
