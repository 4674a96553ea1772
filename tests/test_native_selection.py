"""Which implementation runs (native or pure Python), and how users can tell.

The selection itself lives in ``conctools._internal.native``; it is reported
by ``runtime_info()`` and ``python -m conctools info``.  Each case runs in a
fresh interpreter, since the decision is made once, at import.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import conctools
from conctools._internal import native

NOTICE = "notice: conctools runs pure Python:"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CONCTOOLS_PURE_PYTHON"}
    env.update(extra)
    return env


def _python(code: str, env: dict[str, str]) -> str:
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def _info(env: dict[str, str], *, prelude: str = "") -> tuple[dict[str, object], str]:
    """``info --json`` and ``info`` from one fresh interpreter: (JSON, text)."""
    code = (
        f"{prelude}\nfrom conctools.__main__ import main\n"
        "main(['info', '--json']); print('=' * 8); main(['info'])"
    )
    as_json, text = _python(code, env).split("=" * 8 + "\n")
    return json.loads(as_json), text


def _built() -> bool:
    """Whether conctools._native exists for this interpreter (built in place or installed)."""
    return importlib.util.find_spec("conctools._native") is not None


def test_runtime_info_reports_the_selection() -> None:
    info = conctools.runtime_info()
    assert info.accelerator == native.ACTIVE
    assert info.accelerator_reason == native.REASON
    assert info.accelerator in ("native", "pure-python")
    assert (native.native_module() is not None) is (info.accelerator == "native")
    data = info.as_dict()
    assert data["accelerator"] == info.accelerator
    assert list(data)[-1] == "summary"  # the one-line summary stays last


def test_native_attr_is_none_when_pure() -> None:
    if native.ACTIVE == "native":
        assert native.native_attr("ABI_VERSION") == native.ABI_VERSION
        assert native.native_attr("NoSuchName") is None
    else:
        assert native.native_attr("ABI_VERSION") is None


def test_env_var_forces_pure_python() -> None:
    data, text = _info(_clean_env(CONCTOOLS_PURE_PYTHON="1"))
    assert data["accelerator"] == "pure-python"
    assert data["accelerator_reason"] == "pure Python: CONCTOOLS_PURE_PYTHON=1 is set"
    notices = [line for line in text.splitlines() if line.startswith("notice:")]
    assert notices == [f"{NOTICE} CONCTOOLS_PURE_PYTHON=1 is set"]


def test_env_var_zero_selects_native_when_built() -> None:
    data, text = _info(_clean_env(CONCTOOLS_PURE_PYTHON="0"))
    if _built():
        assert data["accelerator"] == "native", data["accelerator_reason"]
        assert data["accelerator_reason"] == "native: the C accelerator is loaded"
        assert "notice:" not in text
    else:
        assert data["accelerator"] == "pure-python"
        assert "not built" in str(data["accelerator_reason"])


def test_missing_extension_falls_back_with_a_notice() -> None:
    # What a source checkout or an install without a compiler looks like.
    prelude = "import sys; sys.modules['conctools._native'] = None"
    data, text = _info(_clean_env(), prelude=prelude)
    assert data["accelerator"] == "pure-python"
    assert str(data["accelerator_reason"]).startswith("pure Python: the C accelerator is not built")
    notices = [ln for ln in text.splitlines() if "notice" in ln]
    assert len(notices) == 1
    assert notices[0].startswith(f"{NOTICE} the C accelerator is not built")


def test_stale_extension_is_refused() -> None:
    prelude = (
        "import sys, types; m = types.ModuleType('conctools._native'); m.ABI_VERSION = -1; "
        "sys.modules['conctools._native'] = m"
    )
    data, _ = _info(_clean_env(), prelude=prelude)
    assert data["accelerator"] == "pure-python"
    assert "stale (interface -1, expected 1)" in str(data["accelerator_reason"])


def test_pure_python_modules_use_no_native_type() -> None:
    """With CONCTOOLS_PURE_PYTHON=1 nothing from conctools._native is imported at all."""
    code = (
        "import sys, conctools, conctools.testing\n"
        "from conctools._internal import native\n"
        "assert native.native_module() is None\n"
        "print('conctools._native' in sys.modules)"
    )
    assert _python(code, _clean_env(CONCTOOLS_PURE_PYTHON="1")).strip() == "False"


def test_source_checkout_without_build_runs_pure_python(tmp_path: Path) -> None:
    """A copy of the package without any compiled extension imports and runs pure Python."""
    src = Path(conctools.__file__).parent
    dest = tmp_path / "checkout"
    shutil.copytree(
        src, dest / "conctools", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__")
    )
    code = (
        "import conctools, json\n"
        "from conctools.__main__ import main\n"
        f"assert conctools.__file__.startswith({str(dest)!r}), conctools.__file__\n"
        "c = conctools.AtomicInt(1); c.increment()\n"
        "assert c.get() == 2\n"
        "main(['info'])"
    )
    # -S: no site-packages, so neither an installed nor an editable conctools is found.
    r = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        env=_clean_env(PYTHONPATH=str(dest)),
        cwd=str(dest),
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "accelerator          pure-python" in r.stdout
    assert f"{NOTICE} the C accelerator is not built" in r.stdout
