"""CI's --strict-skips (conftest.py): a run that skipped a test for a missing package or data file fails."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'import pytest\n\ndef test_needs_a_package():\n    pytest.importorskip("no_such_package_here")\n'
PRIVILEGE = 'import pytest\n\ndef test_needs_root():\n    pytest.skip("mounting a tmpfs needs root")\n'


def _run(tmp_path: Path, skips: str, *options: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_skips.py").write_text(skips)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ORGANSEG_STRICT_SKIPS", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                           *options, "test_skips.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_skip_for_a_missing_package_fails_the_strict_run_and_names_the_test(tmp_path):
    assert _run(tmp_path, PACKAGE).returncode == 0
    run = _run(tmp_path, PACKAGE, "--strict-skips")
    assert run.returncode == 1, run.stdout
    assert "1 test(s) skipped for a missing package or data file" in run.stdout
    assert "test_needs_a_package" in run.stdout.split("--strict-skips:")[1]


def test_a_skip_for_a_missing_privilege_does_not(tmp_path):
    run = _run(tmp_path, PRIVILEGE, "--strict-skips")
    assert run.returncode == 0, run.stdout
