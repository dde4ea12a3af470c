"""`organseg batch` on a real local Dask cluster of two worker processes, on real CTs.

Same masks as the in-process batch, a bad CT reported, a worker killed in the middle of a case (the case is
retried elsewhere; one killed too often is reported failed), an interrupted client whose rerun resumes, and
the Slurm job script dask-jobqueue generates (no Slurm here: the script is checked, not submitted).
"""
import csv
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("distributed", reason="the cluster extra is not installed: pip install 'organseg[cluster]'")

from organseg.cli import main  # noqa: E402
from organseg.cohort.cluster import ClusterSpec, connect, slurm_cluster, slurm_dashboard  # noqa: E402

HN_CASES = ("train/pt_1", "train/pt_10", "validation/pt_201")


def _summary(out):
    with open(out / "batch_summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _masks(out, case):
    folder = out / case
    return {p.relative_to(folder).as_posix(): sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
            for p in sorted(folder.rglob("*.nii.gz"))}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, data_dir):
    """Real CTs: three head-and-neck CTs (12 slices of each), the 20-slice DICOM series, and a truncated file."""
    hn = data_dir.parent / "openkbp_hn"
    if not (hn / HN_CASES[0] / "ct.nii.gz").is_file():
        pytest.skip(f"OpenKBP CTs not found at {hn}")
    root = tmp_path_factory.mktemp("cluster_cohort")
    cts = []
    for case in HN_CASES:
        image = sitk.ReadImage(str(hn / case / "ct.nii.gz"))
        cts.append(root / f"{case.split('/')[1]}.nii.gz")
        sitk.WriteImage(image[:, :, 58:70], str(cts[-1]))
    data = (data_dir / "example_ct.nii.gz").read_bytes()
    (root / "broken.nii.gz").write_bytes(data[:len(data) // 3])
    return cts + [data_dir / "example_ct_dicom", root / "broken.nii.gz"]


@pytest.fixture(scope="module")
def serial(tmp_path_factory, cohort, tiny_models):
    """The in-process batch's results: the reference."""
    out = tmp_path_factory.mktemp("serial") / "out"
    assert main(["batch", *map(str, cohort), "-o", str(out), "--organs", "liver", "--models", str(tiny_models)]) == 1
    return out


def test_two_workers_give_the_serial_masks_and_report_the_bad_ct(tmp_path, cohort, tiny_models, serial):
    out = tmp_path / "out"
    assert main(["batch", *map(str, cohort), "-o", str(out), "--organs", "liver", "--models", str(tiny_models),
                 "--workers", "2"]) == 1
    rows, reference = _summary(out), _summary(serial)
    assert [(r["case"], r["status"]) for r in rows] == [(r["case"], r["status"]) for r in reference]
    assert [r["status"] for r in rows] == ["segmented"] * 4 + ["failed"]
    assert "broken.nii.gz" in rows[4]["message"] and "corrupt or truncated" in rows[4]["message"]
    assert [r["liver_ml"] for r in rows] == [r["liver_ml"] for r in reference]
    for row in rows[:4]:
        got, want = _masks(out, row["case"]), _masks(serial, row["case"])
        assert got.keys() == want.keys() == {"masks/liver.nii.gz", "segmentation.nii.gz"}
        assert all(np.array_equal(got[k], want[k]) for k in want), row["case"]
    assert any(_masks(out, r["case"])["masks/liver.nii.gz"].any() for r in rows[:4])  # not all empty


def _running(dask_worker):
    return os.getpid(), [str(ts.key) for ts in dask_worker.state.executing]


def _kill_while_running(client, case, deadline):
    """SIGKILL the worker process that runs the case's task, as soon as it runs it."""
    while time.monotonic() < deadline:
        for pid, keys in client.run(_running, on_error="ignore").values():
            if any(k.startswith(f"{case}-") for k in keys):
                os.kill(pid, signal.SIGKILL)
                return
        time.sleep(0.05)
    raise AssertionError(f"{case} never ran")


def _batch_killing(cluster, ct, out, models, kills):
    """Run a batch of one CT against the cluster; kill the worker running it `kills` times; the exit code."""
    argv = ["batch", str(ct), "-o", str(out), "--organs", "liver", "--models", str(models),
            "--scheduler", cluster.client.scheduler.address]
    codes = []
    batch = threading.Thread(target=lambda: codes.append(main(argv)))
    batch.start()
    deadline = time.monotonic() + 600
    for _ in range(kills):
        _kill_while_running(cluster.client, ct.name.split(".")[0], deadline)
    batch.join(timeout=600)
    return codes[0]


def test_a_case_whose_worker_is_killed_is_retried_and_one_killed_too_often_fails(tmp_path, cohort, tiny_models,
                                                                                 serial):
    with connect(ClusterSpec(workers=2, retries=1)) as cluster:
        assert _batch_killing(cluster, cohort[3], tmp_path / "a", tiny_models, kills=1) == 0  # retried elsewhere
        assert _batch_killing(cluster, cohort[3], tmp_path / "b", tiny_models, kills=2) == 1  # more than --retries
    [row] = _summary(tmp_path / "a")
    assert row["status"] == "segmented"
    assert np.array_equal(_masks(tmp_path / "a", "example_ct_dicom")["masks/liver.nii.gz"],
                          _masks(serial, "example_ct_dicom")["masks/liver.nii.gz"])
    [row] = _summary(tmp_path / "b")
    assert row["status"] == "failed" and "died 2 time(s)" in row["message"] and str(cohort[3]) in row["message"]
    assert not (tmp_path / "b" / "example_ct_dicom").exists()


#: Loaded by every process of the interrupted client below (its Dask workers too) through PYTHONPATH: the first
#: case to start segments; every later case waits at the start of segmentation until its worker is stopped.
GATE = """
import os, time
if os.environ.get("ORGANSEG_TEST_GATE"):
    import organseg.segmenter as segmenter
    segment = segmenter.Segmenter.segment

    def gated(self, *args, **kwargs):
        gate = os.environ["ORGANSEG_TEST_GATE"]
        try:
            os.close(os.open(os.path.join(gate, "first"), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            open(os.path.join(gate, f"held-{os.getpid()}"), "w").close()
            time.sleep(600)
        return segment(self, *args, **kwargs)

    segmenter.Segmenter.segment = gated
"""


def test_an_interrupted_client_leaves_no_half_case_and_its_rerun_resumes(tmp_path, cohort, tiny_models, serial):
    # Seven CTs for two workers. Ctrl-C comes at a point the test controls, whatever the machine's speed: once one
    # case is finished and both workers hold a case that has started but cannot finish. Queued ones must not start.
    copies = []
    for ct in cohort[:3]:
        copies.append(tmp_path / f"again_{ct.name}")
        copies[-1].write_bytes(ct.read_bytes())
    cts = [*cohort[:4], *copies]
    out, gate = tmp_path / "out", tmp_path / "gate"
    gate.mkdir()
    (gate / "sitecustomize.py").write_text(GATE)
    argv = ["batch", *map(str, cts), "-o", str(out), "--organs", "liver", "--models", str(tiny_models),
            "--workers", "2"]
    env = {**os.environ, "ORGANSEG_TEST_GATE": str(gate), "PYTHONPATH": os.pathsep.join([str(gate), *sys.path])}
    client = subprocess.Popen([sys.executable, "-m", "organseg.cli", *argv], stderr=subprocess.PIPE, text=True,
                              env=env)
    deadline = time.monotonic() + 600
    while client.poll() is None and time.monotonic() < deadline and not (
            (out / "batch_summary.csv").exists() and _summary(out) and len(list(gate.glob("held-*"))) == 2):
        time.sleep(0.1)
    assert client.poll() is None, client.stderr.read()
    client.send_signal(signal.SIGINT)
    assert client.wait(timeout=120) == 130, client.stderr.read()
    finished = {r["case"] for r in _summary(out)}
    cases = {p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert len(finished) == 1 and cases == finished, (finished, cases)  # the held two and the queued four: none
    for case in cases:
        assert {"masks/liver.nii.gz", "segmentation.nii.gz"} <= _masks(out, case).keys()
        assert (out / case / "stats.json").is_file()

    assert main(argv) == 0
    rows = _summary(out)
    assert {r["case"] for r in rows if r["status"] == "done before"} == cases
    reference = [r["liver_ml"] for r in _summary(serial)]
    assert [r["liver_ml"] for r in rows] == reference[:4] + reference[:3]


def test_the_slurm_job_script_runs_one_worker_declaring_its_memory_and_the_dashboard_is_local(tmp_path):
    import urllib.parse
    import urllib.request

    import psutil

    before = _listening(psutil.Process())
    spec = ClusterSpec(kind="slurm", cores=4, memory="16GB", queue="long")
    with slurm_cluster(spec) as cluster:  # submits nothing: the scheduler and its dashboard start here
        script = cluster.job_script()
        opened = _listening(psutil.Process()) - before
        link = slurm_dashboard(cluster, spec.listen)
        dashboard = urllib.parse.urlsplit(link)
        with urllib.request.urlopen(link, timeout=60) as page:
            assert page.status == 200
    assert dashboard.hostname == "127.0.0.1" and ("127.0.0.1", dashboard.port) in opened
    assert not [ip for ip, port in opened if port == dashboard.port and ip != "127.0.0.1"], opened
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for directive in ("#SBATCH -p long", "#SBATCH -n 1", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=15G"):
        assert directive in lines, directive
    command = lines[-1].split()
    assert command[:3] == [sys.executable, "-m", "distributed.cli.dask_worker"]
    assert command[command.index("--nthreads") + 1] == "4" and "--nworkers" not in command
    assert command[command.index("--resources") + 1] == "MEMORY=16000000000"
    (tmp_path / "job.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "job.sh")]).returncode == 0


def test_without_dask_the_batch_runs_in_process_and_cluster_options_are_one_line_errors(tmp_path, cohort,
                                                                                         tiny_models, capsys):
    no_dask = ("import sys; sys.modules['dask'] = sys.modules['distributed'] = None; "
               "from organseg.cli import main; sys.exit(main(sys.argv[1:]))")
    argv = ["batch", str(cohort[1]), "-o", str(tmp_path / "out"), "--organs", "liver", "--models", str(tiny_models)]
    run = subprocess.run([sys.executable, "-c", no_dask, *argv], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([sys.executable, "-c", no_dask, *argv, "--workers", "2"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2 and "pip install 'organseg[cluster]'" in run.stderr and "Traceback" not in run.stderr
    assert main([*argv, "--workers", "2", "--scheduler", "tcp://localhost:8786"]) == 2
    assert "give only one of --workers, --scheduler and --cluster" in capsys.readouterr().err


def _listening(process):
    """(ip, port) of every listening socket of the process and its children."""
    import psutil

    return {(c.laddr.ip, c.laddr.port) for p in (process, *process.children(recursive=True))
            for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def test_a_local_cluster_listens_on_loopback_only_and_the_printed_dashboard_link_works(capsys):
    import urllib.parse
    import urllib.request

    import psutil

    from organseg.commands.options import say_where

    before = _listening(psutil.Process())
    with connect(ClusterSpec(workers=2)) as cluster:
        cluster.client.wait_for_workers(2, timeout=120)  # connect returns with the workers up; this says so
        opened = _listening(psutil.Process()) - before
        say_where(cluster)
        link = capsys.readouterr().err.split("dashboard: ")[1].strip()
        with urllib.request.urlopen(link, timeout=60) as page:
            assert page.status == 200
        workers = cluster.client.scheduler_info()["workers"]
        addresses = [cluster.client.scheduler.address, *workers, *(w["nanny"] for w in workers.values())]
    ports = {int(urllib.parse.urlsplit(a).port) for a in addresses} | {urllib.parse.urlsplit(link).port}
    assert len(addresses) == 5 and ports <= {port for _, port in opened}  # scheduler, 2 workers, 2 nannies
    assert {ip for ip, _ in opened} == {"127.0.0.1"}, opened
    assert urllib.parse.urlsplit(link).hostname == "127.0.0.1"


def test_on_a_cluster_a_ct_whose_name_is_not_utf8_fails_alone_and_hostile_names_stay_inside(tmp_path, cohort,
                                                                                         tiny_models):
    names = ["good.nii.gz", "...nii.gz", os.fsdecode(b"caf\xe9.nii.gz")]
    (tmp_path / "cts").mkdir()
    for name in names:
        (tmp_path / "cts" / name).write_bytes(cohort[0].read_bytes())
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "cts"), "-o", str(out), "--organs", "liver", "--models", str(tiny_models),
                 "--workers", "2"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cts", "out"]
    rows = {r["case"]: r for r in _summary(out)}
    assert [r["status"] for r in rows.values()].count("segmented") == 2
    [failed] = [r for r in rows.values() if r["status"] == "failed"]
    assert "caf\\xe9.nii.gz: the name is not valid UTF-8" in failed["message"]
    assert len({r["liver_ml"] for r in rows.values() if r["status"] == "segmented"}) == 1
    assert {p.name for p in out.iterdir()} == {c for c, r in rows.items() if r["status"] == "segmented"} | {
        "batch_summary.csv"}
