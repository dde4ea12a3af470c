"""The extension as Slicer's extension index builds and lists it: licence, description, one copy of the library.

Parses the top-level and module CMakeLists.txt (no Slicer build here); every check is one the index's build or
its generated description file trips over.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
#: Slicer's current extension template (Utilities/Templates/Extensions/Default/CMakeLists.txt)
TEMPLATE_CMAKE_MINIMUM = "cmake_minimum_required(VERSION 3.20.6...3.22.6 FATAL_ERROR)"


def _extension_settings() -> dict[str, str]:
    cmake = (ROOT / "CMakeLists.txt").read_text()
    return dict(re.findall(r'^set\((EXTENSION_\w+) "([^"]*)"\)', cmake, re.MULTILINE))


def test_licence_at_the_root_is_the_library_licence():
    licence = (ROOT / "LICENSE.txt").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "OrganSegLib" / "pyproject.toml").read_text()


def test_description_fields_survive_the_generated_description_file():
    """A `;` makes a CMake list: the generated .s4ext keeps only what comes before it."""
    settings = _extension_settings()
    assert {"EXTENSION_DESCRIPTION", "EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY"} <= set(settings)
    for key, value in settings.items():
        assert ";" not in value and "\n" not in value, key
    assert settings["EXTENSION_DESCRIPTION"].endswith("export.")


def test_cmake_minimum_as_in_slicers_template():
    first = next(line for line in (ROOT / "CMakeLists.txt").read_text().splitlines() if line.strip())
    assert first == TEMPLATE_CMAKE_MINIMUM


def test_library_source_installed_once_and_installable():
    module_cmake = (ROOT / "OrganSeg" / "CMakeLists.txt").read_text()
    assert "file(COPY" not in module_cmake  # a configure-time copy would ship it a second time
    assert len(re.findall(r"install\(DIRECTORY [^\n]*OrganSegLib", module_cmake)) == 1
    pyproject = (ROOT / "OrganSegLib" / "pyproject.toml").read_text()
    readme = re.search(r'^readme = "([^"]+)"', pyproject, re.MULTILINE)[1]
    assert (ROOT / "OrganSegLib" / readme).is_file()  # without it pip cannot build the shipped copy
