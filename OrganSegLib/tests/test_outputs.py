"""Result folders never lose a user's files: --overwrite replaces only what a run writes, an interrupt leaves
the earlier or the complete new results, and mounted, read-only or full locations work or fail up front.

Results here are TotalSegmentator's labels of the real DICOM series (four slices), written without a network.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

from organseg.errors import OutputError
from organseg.results.folder import finish_interrupted, holds_results, write_result
from reference_result import reference_result

TS = {"liver": 5, "spleen": 1, "stomach": 6}


@pytest.fixture(scope="module")
def crop(tmp_path_factory, dicom_ct, ts_labels):
    """Four slices of the real DICOM CT and of TotalSegmentator's labels, as files."""
    folder = tmp_path_factory.mktemp("crop")
    sitk.WriteImage(dicom_ct[:, :, 8:12], str(folder / "ct.nii.gz"))
    sitk.WriteImage(ts_labels[:, :, 8:12], str(folder / "labels.nii.gz"))
    return folder


def _result(crop, *organs):
    return reference_result(sitk.ReadImage(str(crop / "ct.nii.gz")), sitk.ReadImage(str(crop / "labels.nii.gz")),
                            {o: TS[o] for o in organs})


def _organs(out):
    return [row["organ"] for row in json.loads((out / "stats.json").read_text())["organs"]]


def _leftovers(folder):
    return [p.name for p in Path(folder).rglob(".organseg-*")]


def test_overwrite_keeps_other_masks_and_the_users_files(tmp_path, crop):
    out = tmp_path / "r"
    write_result(_result(crop, "liver", "spleen"), out)
    shutil.copy(out / "masks/liver.nii.gz", out / "masks/liver_corrected.nii.gz")
    write_result(_result(crop, "stomach"), out, overwrite=True)
    assert sorted(p.name for p in (out / "masks").iterdir()) == [
        "liver.nii.gz", "liver_corrected.nii.gz", "spleen.nii.gz", "stomach.nii.gz"]
    assert _organs(out) == ["stomach"] and not _leftovers(tmp_path)


@pytest.mark.parametrize("name,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_during_the_final_move_leaves_the_complete_new_results(tmp_path, crop, name, code):
    out = tmp_path / "r"
    write_result(_result(crop, "liver", "spleen"), out)
    proc = _child(name, out, crop, "stomach=6", "spleen=1")
    assert proc.returncode == code, proc.stderr
    assert sorted(_organs(out)) == ["spleen", "stomach"]
    assert (out / "masks/liver.nii.gz").is_file() and not _leftovers(tmp_path)


def test_a_move_killed_half_way_is_finished_by_the_next_look_at_the_folder(tmp_path, crop):
    out = tmp_path / "r"
    write_result(_result(crop, "liver", "spleen"), out)
    assert _child("SIGKILL", out, crop, "stomach=6", "spleen=1").returncode == -signal.SIGKILL
    assert _leftovers(out), "the kill came before the move ended"
    assert holds_results(out)
    assert sorted(_organs(out)) == ["spleen", "stomach"] and (out / "masks/stomach.nii.gz").is_file()
    assert not _leftovers(tmp_path)


def test_temporary_folders_of_a_killed_run_are_removed(tmp_path, crop):
    out = tmp_path / "r"
    write_result(_result(crop, "liver"), out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket
    stale = out / f".organseg-new-{socket.gethostname()}-{dead.stdout.strip()}-abc"
    (stale / "masks").mkdir(parents=True)
    finish_interrupted(out)
    assert not stale.exists() and _organs(out) == ["liver"]


def _child(name, out, crop, *pairs):
    return subprocess.run([sys.executable, str(Path(__file__).parent / "reference_result.py"), name, "3", str(out),
                           str(crop / "ct.nii.gz"), str(crop / "labels.nii.gz"), *pairs],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def test_an_output_folder_on_another_filesystem_works(tmp_path, crop):
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) to link to")
    target = Path(os.path.realpath(other / f"organseg-test-{os.getpid()}"))
    target.mkdir()
    try:
        (tmp_path / "r").symlink_to(target)
        write_result(_result(crop, "liver"), tmp_path / "r")
        write_result(_result(crop, "spleen"), tmp_path / "r", overwrite=True)
        assert sorted(p.name for p in (target / "masks").iterdir()) == ["liver.nii.gz", "spleen.nii.gz"]
        assert not _leftovers(target) and not _leftovers(tmp_path)
    finally:
        shutil.rmtree(target)


@pytest.fixture
def small_mount(tmp_path):
    """A 512 KiB tmpfs (root only), mounted read-write, remounted as asked by the test."""
    point = tmp_path / "mnt"
    point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(point)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    yield point
    subprocess.run(["umount", str(point)], check=True)


@pytest.mark.parametrize("kind,problem", [("read-only", "Read-only file system"), ("full", "No space left")])
def test_a_read_only_or_full_location_is_refused_before_any_work(small_mount, crop, kind, problem):
    from organseg.results.folder import check_output_dir
    if kind == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    with pytest.raises(OutputError, match=f"{small_mount / 'r'}: cannot write there \\({problem}"):
        check_output_dir(small_mount / "r", overwrite=False)
    assert os.listdir(small_mount) == []


def _tree(folder):
    """Relative path -> bytes (files) or None (folders): what must stay byte-identical."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("where,earlier", [("mask writer", True), ("final move", True), ("final move", False)])
def test_a_disk_that_fills_up_after_the_check_leaves_the_folder_as_it_was(tmp_path, crop, tiny_models, where, earlier,
                                                                        monkeypatch, capsys):
    """ENOSPC after the pre-check: writing a mask into the temporary folder, or moving a file into place (rename
    needs a new directory entry) once earlier files were moved, into a folder with or without earlier results."""
    import errno

    from organseg.cli import main
    from organseg.results import folder as outputs
    out = tmp_path / "r"
    args = ["segment", str(crop / "ct.nii.gz"), "-o", str(out), "--organs", "liver", "--models", str(tiny_models),
            "--device", "cpu"]
    if earlier:
        assert main(args) == 0
    out.mkdir(exist_ok=True)
    (out / "notes.txt").write_text("the user's own notes")
    before = _tree(out)
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if where == "mask writer":
        def write(image, path):
            raise full
        monkeypatch.setattr(outputs, "atomic_write_image", write)
    else:
        rename, failed = Path.rename, []

        def rename_once(self, target):
            if Path(target) == out / "stats.csv" and not failed:  # after labels.json, masks/ and segmentation.*
                failed.append(target)
                raise full
            return rename(self, target)
        monkeypatch.setattr(Path, "rename", rename_once)
    capsys.readouterr()
    assert main(args + ["--overwrite"]) == 4
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("organseg segment: error:")]
    assert len(lines) == 1 and str(out) in lines[0] and "no space" in lines[0].lower(), lines
    assert _tree(out) == before
    assert not _leftovers(tmp_path)
