#!/usr/bin/env python3
"""Find or build a free-threaded CPython and its GIL twin of the same version.

Prints the two interpreter paths, one per line, as ``freethreaded=PATH`` and
``gil=PATH`` (or a JSON object with ``--json``).  Lookup order:

1. ``python3.14t`` / ``python3.13t`` on ``PATH`` together with a GIL build of
   exactly the same version on ``PATH``;
2. interpreters previously built into this script's cache directory
   (``$CONCTOOLS_PYTHON_CACHE``, else ``$XDG_CACHE_HOME/conctools/python``,
   else ``~/.cache/conctools/python``);
3. ``uv python install 3.14t`` when ``uv`` is available and the network allows;
4. a source build: the newest CPython source that Debian's source archive
   actually serves is fetched with ``apt-get source --download-only`` against
   a temporary deb-src list (the system's apt configuration is never edited;
   the archive URI is read from the system's own apt sources), then built
   twice, with and without ``--disable-gil``, into the cache directory.

With ``--tsan`` the script also finds or builds a ThreadSanitizer-instrumented
free-threaded CPython (``--with-thread-sanitizer --disable-gil``) of the same
version as the pair, from the same source package, cached beside them as
``cpython-VERSION-ft-tsan`` (it is printed as ``tsan=PATH``).  The
instrumented build takes several times longer than a normal one; it is only
needed by the ``native_tsan`` nox session.  Downloaded source tarballs are
kept in the cache's ``sources`` directory, so later builds of the same
version do not download again.

The script is idempotent and safe to run concurrently (an exclusive lock file
serialises builds).  It writes only into its cache directory and a temporary
directory.  Missing build dependencies are installed with apt-get when running
as root; otherwise they are named in the error.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

# Source packages to try, newest first; versions come from the archive index.
SOURCE_PACKAGES = ("python3.14", "python3.13")
# Newer Debian suites whose source index may carry a newer CPython.
SUITES = ("sid", "forky", "trixie")
# Debian packages needed to build a CPython with ssl, zlib, ctypes, sqlite...
BUILD_DEPS = (
    "build-essential",
    "pkg-config",
    "libssl-dev",
    "zlib1g-dev",
    "libffi-dev",
    "libbz2-dev",
    "liblzma-dev",
    "libsqlite3-dev",
    "uuid-dev",
    "libreadline-dev",
    "libncurses-dev",
)
# dpkg-dev provides nothing we need for --download-only, but apt-get source
# complains without it on some systems; it is small.
APT_TOOLS = ("dpkg-dev",)


def log(msg: str) -> None:
    print(f"[provision] {msg}", file=sys.stderr, flush=True)


def fmt_elapsed(seconds: float) -> str:
    """``42s``, ``3m05s``."""
    s = max(0, round(seconds))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def last_line(path: Path, limit: int = 70) -> str:
    """The last non-empty line of a log file, shortened (for heartbeats)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = [ln.strip() for ln in fh.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= limit else line[: limit - 3] + "..."


# Seconds between "still running" lines of a long stage (CONCTOOLS_PROVISION_HEARTBEAT).
HEARTBEAT = float(os.environ.get("CONCTOOLS_PROVISION_HEARTBEAT", "20"))


@contextlib.contextmanager
def stage(
    name: str, *, logfile: Path | None = None, heartbeat: float | None = None
) -> Iterator[None]:
    """Log the start of a stage, a line every ``heartbeat`` seconds while it
    runs (with the last line of ``logfile``), and its elapsed time at the end,
    so a build is never silent for minutes."""
    every = HEARTBEAT if heartbeat is None else heartbeat
    t0 = time.monotonic()
    log(f"{name} ...")
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            tail = last_line(logfile) if logfile else ""
            log(
                f"  {name}: running for {fmt_elapsed(time.monotonic() - t0)}"
                + (f" | {tail}" if tail else "")
            )

    ticker = threading.Thread(target=beat, name="provision-heartbeat", daemon=True)
    ticker.start()
    ok = False
    try:
        yield
        ok = True
    finally:
        stop.set()
        ticker.join()
        took = fmt_elapsed(time.monotonic() - t0)
        log(f"{name}: done in {took}" if ok else f"{name}: failed after {took}")


def cache_dir() -> Path:
    env = os.environ.get("CONCTOOLS_PYTHON_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "conctools" / "python"


def probe(exe: str) -> dict[str, object] | None:
    """Return version and build facts of an interpreter, or None if unusable."""
    code = (
        "import sys, sysconfig, json;"
        "print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3],"
        "'ft': bool(sysconfig.get_config_var('Py_GIL_DISABLED')),"
        "'exe': sys.executable,"
        "'ssl': __import__('importlib.util').util.find_spec('ssl') is not None}))"
    )
    try:
        out = subprocess.run(
            [exe, "-c", code], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        info: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return info


def from_path() -> tuple[str, str] | None:
    for minor in ("3.14", "3.13"):
        ft_exe = shutil.which(f"python{minor}t")
        gil_exe = shutil.which(f"python{minor}")
        if not ft_exe or not gil_exe:
            continue
        ft, gil = probe(ft_exe), probe(gil_exe)
        if ft and gil and ft["ft"] and not gil["ft"] and ft["version"] == gil["version"]:
            return str(ft["exe"]), str(gil["exe"])
    return None


def from_cache(root: Path) -> tuple[str, str] | None:
    best: tuple[tuple[int, ...], str, str] | None = None
    if not root.is_dir():
        return None
    for d in root.glob("cpython-*-ft"):
        version = d.name[len("cpython-") : -len("-ft")]
        minor = ".".join(version.split(".")[:2])
        ft_exe = d / "bin" / f"python{minor}t"
        gil_exe = root / f"cpython-{version}-gil" / "bin" / f"python{minor}"
        if not (ft_exe.exists() and gil_exe.exists()):
            continue
        if not ((d / ".complete").exists() and (gil_exe.parent.parent / ".complete").exists()):
            continue
        key = tuple(int(p) for p in version.split("."))
        if best is None or key > best[0]:
            best = (key, str(ft_exe), str(gil_exe))
    return (best[1], best[2]) if best else None


def try_uv() -> tuple[str, str] | None:
    uv = shutil.which("uv")
    if not uv:
        return None
    for spec in ("3.14t", "3.13t"):
        minor = spec[:-1]
        try:
            subprocess.run(
                [uv, "python", "install", spec, minor], check=True, timeout=300, capture_output=True
            )
            ft = subprocess.run(
                [uv, "python", "find", spec], check=True, capture_output=True, text=True, timeout=60
            ).stdout.strip()
            gil = subprocess.run(
                [uv, "python", "find", minor],
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        pf, pg = probe(ft), probe(gil)
        if pf and pg and pf["ft"] and not pg["ft"] and pf["version"] == pg["version"]:
            return ft, gil
    return None


def missing_packages(names: tuple[str, ...]) -> list[str]:
    missing = []
    for name in names:
        r = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True
        )
        if r.returncode != 0 or "install ok installed" not in r.stdout:
            missing.append(name)
    return missing


def ensure_build_deps() -> None:
    if not shutil.which("dpkg-query"):
        if not shutil.which("cc"):
            raise SystemExit("provision: no C compiler found and no dpkg to install one")
        return
    missing = missing_packages(BUILD_DEPS + APT_TOOLS)
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(
            "provision: missing build dependencies: "
            + " ".join(missing)
            + "\ninstall them (e.g. sudo apt-get install -y "
            + " ".join(missing)
            + ") and run again"
        )
    log(f"installing build dependencies: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env, check=True
        )


def archive_uri(paths: list[Path] | None = None) -> str:
    """The Debian archive URI already configured on this system."""
    if paths is None:
        paths = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    texts: list[str] = []
    for p in paths:
        if p.suffix in (".list", ".sources") or p.name == "sources.list":
            with contextlib.suppress(OSError):
                texts.append(p.read_text())
    uris = parse_uris("\n".join(texts))
    for uri in uris:
        # Prefer the main archive over security/updates mirrors.
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    if uris:
        return uris[0].rstrip("/")
    raise SystemExit("provision: no Debian archive URI found in the system's apt sources")


def parse_uris(text: str) -> list[str]:
    """Archive URIs named by one-line (``deb URI suite``) or deb822 (``URIs:``) sources."""
    uris: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        m = re.match(r"^URIs:\s*(.+)$", line)
        if m:
            uris.extend(m.group(1).split())
            continue
        m = re.match(r"^deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)", line)
        if m:
            uris.append(m.group(1))
    return uris


def apt_opts(tmp: Path) -> list[str]:
    return [
        "-o",
        f"Dir::Etc::SourceList={tmp / 'sources.list'}",
        "-o",
        f"Dir::Etc::SourceParts={tmp / 'parts'}",
        "-o",
        f"Dir::State::Lists={tmp / 'lists'}",
        "-o",
        f"Dir::Cache={tmp / 'cache'}",
        "-o",
        "APT::Sandbox::User=root",
    ]


def version_key(v: str) -> tuple[int, ...]:
    upstream = v.split("-", maxsplit=1)[0].split("+", maxsplit=1)[0].split("~", maxsplit=1)[0]
    return tuple(int(x) for x in re.findall(r"\d+", upstream)[:3])


def cached_source(root: Path, version: str) -> Path | None:
    """A source tarball of ``version`` kept by an earlier download, or None."""
    for tarball in sorted((root / "sources").glob("*.orig.tar.*")):
        m = re.search(r"_(\d+\.\d+\.\d+)", tarball.name)
        if m and m.group(1) == version:
            return tarball
    return None


def keep_source(root: Path, tarball: Path) -> Path:
    """Copy a downloaded tarball into the cache (for later builds of the same version)."""
    dest = root / "sources" / tarball.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        part = dest.with_name(dest.name + ".part")
        shutil.copyfile(tarball, part)
        part.replace(dest)
    return dest


def fetch_source(tmp: Path, version: str | None = None) -> tuple[str, Path]:
    """Download a CPython source tarball via Debian's source archive
    (the newest one, or exactly upstream ``version`` when given)."""
    if not shutil.which("apt-get"):
        raise SystemExit("provision: apt-get not available; install python3.13t yourself")
    uri = archive_uri()
    (tmp / "parts").mkdir(parents=True, exist_ok=True)
    (tmp / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (tmp / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (tmp / "sources.list").write_text("".join(f"deb-src {uri} {suite} main\n" for suite in SUITES))
    opts = apt_opts(tmp)
    with stage(f"download: reading the source index ({', '.join(SUITES)})"):
        subprocess.run(["apt-get", *opts, "update"], check=True, capture_output=True)
    candidates: list[tuple[tuple[int, ...], str, str]] = []
    for pkg in SOURCE_PACKAGES:
        r = subprocess.run(["apt-cache", *opts, "showsrc", pkg], capture_output=True, text=True)
        current = None
        for line in r.stdout.splitlines():
            if line.startswith("Package:"):
                current = line.split(":", 1)[1].strip()
            elif line.startswith("Version:") and current == pkg:
                ver = line.split(":", 1)[1].strip()
                candidates.append((version_key(ver), pkg, ver))
    candidates = sorted(set(candidates), reverse=True)
    if version is not None:
        candidates = [c for c in candidates if c[2].split("-")[0] == version]
        if not candidates:
            raise SystemExit(
                f"provision: the archive index no longer lists CPython {version}; "
                "remove the cached interpreters to build a newer pair"
            )
    if not candidates:
        raise SystemExit("provision: no CPython source package found in the archive index")
    dl = tmp / "download"
    for _, pkg, ver in candidates:
        shutil.rmtree(dl, ignore_errors=True)
        dl.mkdir()
        with stage(f"download: CPython source package {pkg}={ver}"):
            r = subprocess.run(
                ["apt-get", *opts, "source", "--download-only", f"{pkg}={ver}"],
                cwd=dl,
                capture_output=True,
                text=True,
                timeout=900,
            )
        origs = list(dl.glob("*.orig.tar.*"))
        if r.returncode == 0 and origs:
            upstream = ver.split("-")[0]
            log(f"downloaded {origs[0].name}")
            return upstream, origs[0]
        log(f"  not downloadable ({(r.stderr.strip().splitlines() or ['?'])[-1]})")
    raise SystemExit("provision: none of the listed CPython sources could be downloaded")


def configure_args(prefix: Path, free_threaded: bool, tsan: bool = False) -> list[str]:
    """The ``./configure`` command line of one build."""
    args = [
        "./configure",
        f"--prefix={prefix}",
        "--with-ensurepip=install",
        "--disable-test-modules",
    ]
    if free_threaded:
        args.append("--disable-gil")
    if tsan:
        args.append("--with-thread-sanitizer")
    return args


def build(
    src_tar: Path,
    version: str,
    prefix: Path,
    free_threaded: bool,
    work: Path,
    *,
    step: str = "",
    tsan: bool = False,
) -> None:
    label = ("TSan " if tsan else "") + ("free-threaded" if free_threaded else "GIL")
    tag = f"{step}CPython {version} {label}"
    tree = work / (("tsan-" if tsan else "") + ("ft" if free_threaded else "gil"))
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    with stage(f"{tag}: extract"), tarfile.open(src_tar) as tf:
        if sys.version_info >= (3, 12):
            tf.extractall(tree, filter="data")
        else:  # pragma: no cover - older build hosts
            tf.extractall(tree)
    srcdir = next(p for p in tree.iterdir() if p.is_dir())
    shutil.rmtree(prefix, ignore_errors=True)
    args = configure_args(prefix, free_threaded, tsan)
    jobs = str(os.cpu_count() or 2)
    logfile = work / f"build-{label.replace(' ', '-')}.log"
    log(f"{tag}: building into {prefix} (full log: {logfile})")
    steps = (
        ("configure", args),
        (f"build (make -j{jobs})", ["make", f"-j{jobs}"]),
        ("install", ["make", "install"]),
    )
    env = None
    if tsan:
        # The build runs the instrumented interpreter (freezing, ensurepip): a report
        # there is CPython's business, not a reason to fail the build.
        env = dict(os.environ, TSAN_OPTIONS="exitcode=0 report_bugs=0")
    with open(logfile, "w") as fh:
        for name, cmd in steps:
            with stage(f"{tag}: {name}", logfile=logfile):
                r = subprocess.run(cmd, cwd=srcdir, stdout=fh, stderr=subprocess.STDOUT, env=env)
            if r.returncode != 0:
                fh.flush()
                tail = logfile.read_text().splitlines()[-30:]
                raise SystemExit(f"provision: {' '.join(cmd)} failed:\n" + "\n".join(tail))
    (prefix / ".complete").write_text(version + "\n")
    shutil.rmtree(tree, ignore_errors=True)


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def provision(allow_build: bool = True) -> tuple[str, str]:
    found = from_path()
    if found:
        return found
    root = cache_dir()
    found = from_cache(root)
    if found:
        return found
    if not allow_build:
        raise SystemExit("provision: no free-threaded interpreter found (build disabled)")
    with locked(root):
        found = from_cache(root)  # another run may have finished meanwhile
        if found:
            return found
        found = try_uv()
        if found:
            return found
        started = time.monotonic()
        log(
            "no free-threaded CPython found: building one and its GIL twin from source into "
            f"{root} (once; about 5 minutes on 2 cores, then cached)"
        )
        with stage("build dependencies"):
            ensure_build_deps()
        with tempfile.TemporaryDirectory(prefix="conctools-provision-") as t:
            tmp = Path(t)
            version, tarball = fetch_source(tmp)
            tarball = keep_source(root, tarball)
            for i, ft in enumerate((True, False), 1):
                suffix = "ft" if ft else "gil"
                build(
                    tarball,
                    version,
                    root / f"cpython-{version}-{suffix}",
                    ft,
                    tmp,
                    step=f"[{i}/2] ",
                )
        log(f"interpreters ready in {fmt_elapsed(time.monotonic() - started)}")
        found = from_cache(root)
        if not found:
            raise SystemExit("provision: build finished but interpreters were not found")
        return found


def tsan_prefix(root: Path, version: str) -> Path:
    return root / f"cpython-{version}-ft-tsan"


def tsan_from_cache(root: Path, version: str) -> str | None:
    prefix = tsan_prefix(root, version)
    minor = ".".join(version.split(".")[:2])
    exe = prefix / "bin" / f"python{minor}t"
    return str(exe) if exe.exists() and (prefix / ".complete").exists() else None


def provision_tsan(ft_exe: str, allow_build: bool = True) -> str:
    """A ThreadSanitizer free-threaded CPython of the same version as ``ft_exe``."""
    info = probe(ft_exe)
    if not info:
        raise SystemExit(f"provision: {ft_exe} does not run")
    version = str(info["version"])
    root = cache_dir()
    found = tsan_from_cache(root, version)
    if found:
        return found
    if not allow_build:
        raise SystemExit("provision: no ThreadSanitizer interpreter found (build disabled)")
    with locked(root):
        found = tsan_from_cache(root, version)
        if found:
            return found
        started = time.monotonic()
        log(
            f"no ThreadSanitizer build of CPython {version} found: building one into {root} "
            "(once; instrumented builds take several times longer than a normal one)"
        )
        with stage("build dependencies"):
            ensure_build_deps()
        with tempfile.TemporaryDirectory(prefix="conctools-provision-") as t:
            tmp = Path(t)
            tarball = cached_source(root, version)
            if tarball is None:
                got, downloaded = fetch_source(tmp, version)
                assert got == version, (got, version)
                tarball = keep_source(root, downloaded)
            else:
                log(f"source: {tarball} (kept from an earlier download)")
            build(tarball, version, tsan_prefix(root, version), True, tmp, tsan=True)
        log(f"ThreadSanitizer interpreter ready in {fmt_elapsed(time.monotonic() - started)}")
        found = tsan_from_cache(root, version)
        if not found:
            raise SystemExit("provision: TSan build finished but the interpreter was not found")
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument(
        "--which",
        choices=("freethreaded", "gil", "tsan"),
        help="print only this interpreter's path (tsan implies --tsan)",
    )
    parser.add_argument(
        "--tsan",
        action="store_true",
        help="also find or build a ThreadSanitizer free-threaded CPython of the same version",
    )
    parser.add_argument("--no-build", action="store_true", help="only look, never build")
    ns = parser.parse_args(argv)
    ft, gil = provision(allow_build=not ns.no_build)
    paths = {"freethreaded": ft, "gil": gil}
    if ns.tsan or ns.which == "tsan":
        paths["tsan"] = provision_tsan(ft, allow_build=not ns.no_build)
    if ns.which:
        print(paths[ns.which])
    elif ns.json:
        print(json.dumps(paths))
    else:
        for key, path in paths.items():
            print(f"{key}={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
