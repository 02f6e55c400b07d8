"""One import name: the distribution installs ``kantong`` only, with the stages as sub-packages."""

import importlib.metadata
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _declared_packages() -> set[str]:
    return set(tomllib.loads((ROOT /
    "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def _package_folders() -> set[str]:
    found = {"kantong"}
    for folder, prefix in (("engine", "kantong.engine"), ("webmap", "kantong.webmap")):
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((prefix, *rel)))
    return found


def test_every_package_folder_is_declared():
    assert _declared_packages() == _package_folders()


def test_engine_top_level_is_small_and_stages_are_subpackages():
    modules = [p.name for p in (ROOT / "engine").glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= 12, sorted(modules)
    for stage in ("inputs", "build", "pockets", "sites", "publish", "compare", "demo", "cli"):
        assert (ROOT / "engine" / stage / "__init__.py").is_file(), stage


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True, capture_output=True, timeout=300)
    (found,) = out.glob("kantong-*.whl")
    return found


def test_wheel_installs_one_top_level_name(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert zf.read(top).decode().split() == ["kantong"]
    roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert roots == {"kantong"}
    assert "kantong/engine/pockets/hotspots.py" in names
    assert "kantong/webmap/static/vendor/leaflet/leaflet.js" in names or any(
        n.startswith("kantong/webmap/static/vendor/") and n.endswith("leaflet.js") for n in names)
    assert not any(n.startswith(("engine/", "webmap/")) for n in names)


def test_old_top_level_names_do_not_import_outside_the_repository(tmp_path):
    for name in ("engine", "webmap"):
        result = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and "No module named" in result.stderr, name
    ok = subprocess.run([sys.executable, "-c", "import kantong.engine, kantong.webmap, kantong;"
                         "print(kantong.__version__)"], cwd=tmp_path, capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == importlib.metadata.version("kantong")
