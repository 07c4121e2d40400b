"""The built sdist and wheel hold every package file and declare clean metadata.

scripts/check-wheel passes its build in ``SERVICEBUS_DIST_DIR``; run alone, the test builds
both (sdist, then the wheel from it, as pip would) from a clean copy of the tree: a stale
``servicebus.egg-info/SOURCES.txt`` (an editable install leaves one) would otherwise put
files into the sdist that package-data does not name, and hide them missing.
"""

from __future__ import annotations

import email
import email.message
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "servicebus"


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with one sdist and one wheel of the working tree."""
    given = os.environ.get("SERVICEBUS_DIST_DIR")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("dist")
    src = clean_copy(tmp_path_factory.mktemp("src"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "-m", "build", "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [
        line for line in (done.stdout + done.stderr).splitlines() if "warning" in line.lower()
    ]
    assert not warnings, "the build warned:\n" + "\n".join(warnings)
    return out


def clean_copy(dst: Path) -> Path:
    """Copy the files git tracks or would track (not ignored ones) to ``dst``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is skipped
            target = dst / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dst


def _one(dist_dir: Path, pattern: str) -> Path:
    found = sorted(dist_dir.glob(pattern))
    assert len(found) == 1, f"want one {pattern} in {dist_dir}, found {found}"
    return found[0]


def package_files() -> set[str]:
    """Every file of the package in the source tree, as ``servicebus/...`` paths."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(zf.read(name))


def test_wheel_holds_every_package_file(dist_dir: Path) -> None:
    with zipfile.ZipFile(_one(dist_dir, "servicebus-*.whl")) as zf:
        names = set(zf.namelist())
    missing = package_files() - names
    assert not missing, f"files missing from the wheel: {sorted(missing)}"
    for must in ("servicebus/py.typed", "servicebus/outbox/migrations/0001_initial.py"):
        assert must in names
    assert any(re.fullmatch(r"servicebus-[^/]+\.dist-info/licenses/LICENSE", n) for n in names)
    # Nothing but the package and its metadata: no tests, services or benchmarks.
    assert {n.split("/")[0] for n in names} - {"servicebus"} == {
        next(n.split("/")[0] for n in names if ".dist-info/" in n)
    }


def test_sdist_holds_every_package_file_and_the_license(dist_dir: Path) -> None:
    sdist = _one(dist_dir, "servicebus-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    missing = (package_files() | {"LICENSE", "README.md", "pyproject.toml"}) - names
    assert not missing, f"files missing from the sdist: {sorted(missing)}"


def test_metadata_license_classifiers_urls(dist_dir: Path) -> None:
    meta = wheel_metadata(_one(dist_dir, "servicebus-*.whl"))
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["License"] is None  # the deprecated free-text form is gone
    classifiers = set(meta.get_all("Classifier") or [])
    for must in (
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Typing :: Typed",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ):
        assert must in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Changelog"} <= set(urls)
    try:
        from trove_classifiers import classifiers as known
    except ImportError:  # pragma: no cover - a dev dependency
        return
    assert not classifiers - set(known), "unknown trove classifiers"


def test_daphne_is_an_extra_and_the_library_never_imports_it(dist_dir: Path) -> None:
    requires = wheel_metadata(_one(dist_dir, "servicebus-*.whl")).get_all("Requires-Dist") or []
    daphne = [r for r in requires if r.lower().startswith("daphne")]
    assert daphne, "daphne is offered as an extra"
    assert all("extra ==" in r for r in daphne), daphne
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+daphne\b", text, re.M), path


def test_dockerfile_copies_what_the_build_needs_and_installs_daphne() -> None:
    # The image builds the package from pyproject.toml: license-files must be there, and
    # docker-compose runs daphne, which is an extra now.
    text = (ROOT / "Dockerfile").read_text()
    copy = re.search(r"^COPY pyproject\.toml (.*) \./$", text, re.M)
    assert copy and "LICENSE" in copy.group(1).split()
    install = re.search(r'^RUN pip install "\.\[(.*)\]"$', text, re.M)
    assert install and "daphne" in install.group(1).split(",")
