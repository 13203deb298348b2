"""The three install routes name the same packages: requirements.in (direct pins), the lock
(requirements.txt) that the Makefile installs, and environment.yml for conda users."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        assert m, f"{path.name}: not an exact pin: {line!r}"
        name = re.sub(r"\[.*\]$", "", m.group(1))  # an extra (dask[distributed]) pins its package
        pins[re.sub(r"[-_.]+", "-", name).lower()] = m.group(2)
    return pins


def test_direct_requirements_are_pinned_and_in_the_lock():
    direct, lock = _pins(ROOT / "requirements.in"), _pins(ROOT / "requirements.txt")
    for name in ("torch", "torchvision", "torchaudio", "jupyter-book", "papermill"):
        assert name in direct
    assert direct["torch"] == "2.11.0" and direct["torchvision"] == "0.26.0" and direct["torchaudio"] == "2.11.0"
    assert direct["jupyter-book"].startswith("1.")
    for name, version in direct.items():
        assert lock.get(name) == version, f"{name}=={version} of requirements.in is {lock.get(name)} in the lock"


def test_environment_yml_uses_the_same_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-r requirements.txt" in pip_section
    # the lock it points at names every direct requirement (same package set as the Makefile route)
    lock = _pins(ROOT / "requirements.txt")
    assert set(_pins(ROOT / "requirements.in")) <= set(lock)
