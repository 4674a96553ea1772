"""pytest plugin: linearizability tests in a few lines (entry point ``conctools``).

Installed with conctools (a ``pytest11`` entry point) and inert unless a test
uses it: it adds three settings, one marker and one fixture, and changes
nothing else. Disable it with ``-p no:conctools``.

Settings (``pytest.ini`` / ``pyproject.toml`` ``[tool.pytest.ini_options]``
key, or the command-line option, which wins):

* ``conctools_trials`` / ``--conctools-trials`` -- runs of each scenario
  (default 100);
* ``conctools_preempt`` / ``--conctools-preempt`` -- probability of a forced
  thread switch at each traced line (default: the library's, 0.25 on every
  build; ``0`` turns forced switching off);
* ``conctools_timeout`` / ``--conctools-timeout`` -- seconds the checker may
  spend on one history before the trial counts as undecided (default 5).

The marker ``@pytest.mark.linearizable(factory, spec, *, partition=None,
trials=None, preempt=None, timeout=None)`` sets the object under test and its
sequential specification for the test; the ``linearizable`` fixture (session
scoped, so it also works inside ``@given``) runs a scenario:

.. code-block:: python

    @pytest.mark.linearizable(factory=LockedCounts, spec=CountsSpec)
    def test_counts(linearizable):
        linearizable(Scenario(threads=((Call("add", ("a",)),),) * 2))

    @pytest.mark.linearizable(factory=LockedCounts, spec=CountsSpec)
    @given(scenarios({"add": st.tuples(keys), "get": st.tuples(keys)}))
    def test_counts_property(linearizable, scenario):
        linearizable(scenario)

Arguments given to the call win over the marker, which wins over the
settings. A violation fails the test with the checker's
:meth:`~conctools.testing.LinearizabilityResult.explain` report and the
scenario's pasteable ``repr``, also shown as a report section
("linearizability").
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Iterator
from typing import Any

# The type checker may run without pytest installed: decorators are applied as
# calls below so that the module stays fully typed either way.
import pytest  # type: ignore[import-not-found, unused-ignore]

from .linearizability import LinearizabilityResult
from .recorder import Operation
from .scenario import Scenario, assert_linearizable

__all__ = ["Linearizable"]

DEFAULT_TRIALS = 100
DEFAULT_TIMEOUT = 5.0

_current: list[pytest.Item] = []
_REPORT_KEY = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conctools", "conctools linearizability checks")
    group.addoption(
        "--conctools-trials",
        type=int,
        default=None,
        help=f"runs of each scenario checked by the linearizable fixture (ini "
        f"conctools_trials, default {DEFAULT_TRIALS})",
    )
    group.addoption(
        "--conctools-preempt",
        type=float,
        default=None,
        help="probability of a forced thread switch at each traced line (ini conctools_preempt, "
        "default 0.25; 0 = off)",
    )
    group.addoption(
        "--conctools-timeout",
        type=float,
        default=None,
        help=f"seconds the checker may spend on one history (ini conctools_timeout, "
        f"default {DEFAULT_TIMEOUT:g})",
    )
    parser.addini("conctools_trials", "runs of each scenario (linearizable fixture)", default="")
    parser.addini("conctools_preempt", "forced thread switch probability per line", default="")
    parser.addini("conctools_timeout", "checker timeout per history, seconds", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "linearizable(factory, spec, *, partition=None, trials=None, preempt=None, "
        "timeout=None): object under test and sequential spec for the linearizable fixture",
    )
    # bad values fail the session at start, not in the first test that uses them
    _setting(config, "trials", int)
    _setting(config, "preempt", float)
    _setting(config, "timeout", float)


def _setting(config: pytest.Config, name: str, convert: Callable[[str], Any]) -> Any:
    value = config.getoption(f"conctools_{name}", None)
    if value is not None:
        return value
    raw = config.getini(f"conctools_{name}")
    if isinstance(raw, str) and raw.strip():
        try:
            return convert(raw.strip())
        except ValueError:
            raise pytest.UsageError(f"conctools_{name} = {raw!r} is not a number") from None
    return None


def _runtest_call(item: pytest.Item) -> Iterator[None]:
    _current.append(item)
    try:
        return (yield)
    finally:
        _current.remove(item)


def _runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    texts = item.stash.get(_REPORT_KEY, None)
    if texts and call.when == "call":
        report.sections.append(("linearizability", texts[-1]))
        texts.clear()
    return report


pytest_runtest_call = pytest.hookimpl(wrapper=True)(_runtest_call)
pytest_runtest_makereport = pytest.hookimpl(wrapper=True)(_runtest_makereport)


class Linearizable:
    """What the ``linearizable`` fixture returns: call it with a scenario.

    ``linearizable(scenario, factory=None, spec=None, *, partition=None,
    trials=None, preempt=None, timeout=None)`` runs ``scenario`` ``trials``
    times on fresh ``factory()`` objects and checks each history against
    ``spec`` (see :func:`~conctools.testing.assert_linearizable`); arguments
    left out come from the test's ``linearizable`` marker, then from the
    settings. Returns the per-trial results; raises :class:`AssertionError`
    with the checker's explanation on a violation.

    **Thread safety.** Stateless apart from the configuration it reads: may be
    called from several threads (for example under pytest-run-parallel).

    **Atomic operations.** None: a test helper.

    **Iteration.** Not iterable.

    **Blocking and timeouts.** Each call blocks while its trials run; a hung
    trial fails after 30 s with :class:`~conctools.testing.ThreadsStuck`.

    **Complexity.** ``trials`` scenario runs plus one checker search each.
    """

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    @property
    def trials(self) -> int:
        """The configured number of trials (settings, else 100)."""
        value = _setting(self._config, "trials", int)
        return DEFAULT_TRIALS if value is None else int(value)

    @property
    def preempt(self) -> float | None:
        """The configured forced-switch probability (``None``: the library default)."""
        value = _setting(self._config, "preempt", float)
        return None if value is None else float(value)

    @property
    def timeout(self) -> float:
        """The configured checker timeout per history, in seconds."""
        value = _setting(self._config, "timeout", float)
        return DEFAULT_TIMEOUT if value is None else float(value)

    def __call__(
        self,
        scenario: Scenario,
        factory: Callable[[], Any] | None = None,
        spec: Callable[[], Any] | None = None,
        *,
        partition: Callable[[Operation], Hashable] | None = None,
        trials: int | None = None,
        preempt: float | None = None,
        timeout: float | None = None,
    ) -> list[LinearizabilityResult]:
        __tracebackhide__ = True
        item = _current[-1] if _current else None
        mark = item.get_closest_marker("linearizable") if item is not None else None
        mk: dict[str, Any] = dict(mark.kwargs) if mark is not None else {}
        if mark is not None and mark.args:
            names = ("factory", "spec")
            if len(mark.args) > len(names):
                raise TypeError("linearizable marker takes at most 2 positional arguments")
            mk.update(zip(names, mark.args, strict=False))
        unknown = set(mk) - {"factory", "spec", "partition", "trials", "preempt", "timeout"}
        if unknown:
            raise TypeError(f"unknown linearizable marker argument(s): {sorted(unknown)}")
        factory = factory if factory is not None else mk.get("factory")
        spec = spec if spec is not None else mk.get("spec")
        if factory is None or spec is None:
            raise TypeError(
                "linearizable(scenario) needs factory= and spec=, as arguments or from "
                "@pytest.mark.linearizable(factory=..., spec=...)"
            )
        partition = partition if partition is not None else mk.get("partition")
        n = trials if trials is not None else mk.get("trials", self.trials)
        p = preempt if preempt is not None else mk.get("preempt", self.preempt)
        t = timeout if timeout is not None else mk.get("timeout", self.timeout)
        try:
            return assert_linearizable(
                scenario, factory, spec, partition=partition, trials=n, timeout=t, preempt=p
            )
        except AssertionError as exc:
            if item is not None:  # the last failure (hypothesis: the shrunk scenario)
                item.stash[_REPORT_KEY] = [str(exc)]
            raise


def _linearizable(pytestconfig: pytest.Config) -> Linearizable:
    """Run a :class:`~conctools.testing.Scenario` many times and check every history.

    See :class:`Linearizable` for the call; defaults come from the test's
    ``@pytest.mark.linearizable(factory=..., spec=...)`` marker and the
    ``conctools_trials`` / ``conctools_preempt`` / ``conctools_timeout``
    settings.
    """
    return Linearizable(pytestconfig)


linearizable = pytest.fixture(scope="session", name="linearizable")(_linearizable)
