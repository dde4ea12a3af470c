"""First use in Slicer: what is installed, from where, at which versions, and that the user is told first."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from organseg_slicer import dependencies


def _closure(names) -> dict[str, str]:
    """Every package installing `names` pulls in here (requirements without extras), at its installed version."""
    found, todo = {}, list(names)
    while todo:
        dist = metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found[key] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return found


def test_pins_are_the_versions_the_tests_run_with():
    tested = _closure(dependencies.REQUIRED)
    assert tested.pop("organseg") == metadata.version("organseg")  # from the shipped copy, not pinned by name
    assert {k.lower(): v for k, v in dependencies.TESTED.items()} == tested
    assert dependencies.requirement("onnxruntime") == f"onnxruntime=={metadata.version('onnxruntime')}"


def test_constraints_pin_every_package(tmp_path):
    lines = dependencies.constraints(tmp_path).read_text().split()
    assert sorted(lines) == sorted(f"{name}=={version}" for name, version in dependencies.TESTED.items())


def test_never_falls_back_to_an_unpinned_library_from_the_index(monkeypatch, tmp_path):
    monkeypatch.delenv("ORGANSEG_PIP_REQUIREMENT", raising=False)
    monkeypatch.setattr(dependencies, "LIBRARY_SOURCES", (tmp_path / "OrganSegLib",))
    with pytest.raises(dependencies.InstallError, match="shipped with the extension is missing"):
        dependencies.requirement("organseg")
    with pytest.raises(dependencies.InstallError, match="reinstall the OrganSeg extension"):
        dependencies.install_plan(["organseg", "onnxruntime"])


def test_plan_says_what_will_be_installed(monkeypatch):
    monkeypatch.delenv("ORGANSEG_PIP_REQUIREMENT", raising=False)
    assert (Path(dependencies.library_requirement()) / "pyproject.toml").is_file()
    plan = dependencies.install_plan(["organseg", "onnxruntime"])
    assert plan == ["organseg 0.1.0 (shipped with the extension)", f"onnxruntime {dependencies.TESTED['onnxruntime']}"]
    # (everything else is installed here already, and stays at its version)
    monkeypatch.setenv("ORGANSEG_PIP_REQUIREMENT", "organseg==0.1.0")
    assert dependencies.install_plan(["organseg"]) == ["organseg==0.1.0"]
