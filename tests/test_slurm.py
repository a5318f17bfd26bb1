"""deploy/slurm/sweep.sbatch against a real Slurm: a two-node cluster on this machine.

The module's fixture installs Debian's ``slurm-wlm`` and ``munge`` when ``sbatch`` is missing,
starts ``munged``, ``slurmctld`` and two ``slurmd`` (nodes n1 and n2 of one CPU each, told apart
by their ports; process tracking by ``proctrack/linuxproc``, which needs neither cgroups nor
systemd) from a generated ``slurm.conf`` in a temporary directory, and stops and removes all of
it afterwards. The sweeps are ``vib_digits --smoke``: a 64-unit MLP for 2 epochs with FGSM alone,
the smallest of the ``*_digits`` smoke sweeps (``ceb_digits`` is as small, and its report wants a
finished ``vib_digits`` run), so that two Ray nodes, the MLflow server and the sweep fit on two CPU
cores. The test's three jobs took 243 s on two cores that other work shared (load 4 to 8), the
installation 8 s.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search_spaces import get_sweep
from search_spaces.spec import parse_sets
from tests.helpers import metric_steps, mlflow_runs, read_tables

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "slurm" / "sweep.sbatch"
SWEEP = "vib_digits"
BETAS = "beta=[0.0001, 0.001, 0.01, 0.1, 0.5, 1.0]"  # six trials: two cancels still leave one to resume
SBIN = ("/usr/sbin", "/sbin", "/usr/bin")


# ---- the script's own checks, without Slurm ---------------------------------------------------

@pytest.mark.parametrize("args", [[], ["--smoke"]])
def test_a_missing_sweep_name_is_one_line_and_exit_code_2(args):
    done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "error: name a sweep first" in done.stderr


def test_outside_a_slurm_job_it_says_to_use_sbatch():
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    done = subprocess.run(["bash", str(SCRIPT), SWEEP, "--smoke"], capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 2 and "error: run it with sbatch" in done.stderr


# ---- a one-machine Slurm ---------------------------------------------------------------------

def _find(program: str) -> str | None:
    return shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN]))


def _install_slurm() -> None:
    """apt-get install slurm-wlm munge, or skip where that is impossible."""
    if os.geteuid() != 0:
        pytest.skip("Slurm is not installed and installing it (apt-get install slurm-wlm munge) needs root")
    if _find("apt-get") is None:
        pytest.skip("Slurm is not installed and this machine has no apt-get to install slurm-wlm and munge")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "slurm-wlm", "munge"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, env=env, timeout=600)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"apt-get install slurm-wlm munge failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class Slurm:
    """munged, slurmctld and slurmd for nodes n1 and n2, all children of this process."""

    NODES = ("n1", "n2")

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.daemons: list[subprocess.Popen] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self) -> None:
        root, host = self.root, socket.gethostname().split(".")[0]
        for sub in ("munge", "state", "log", "spool"):
            (root / sub).mkdir(mode=0o700)
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        socket_path = root / "munge" / "munge.socket"
        self._daemon([_find("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={socket_path}",
                      f"--pid-file={root / 'munge' / 'munged.pid'}", f"--log-file={root / 'log' / 'munged.log'}",
                      f"--seed-file={root / 'munge' / 'munged.seed'}"])
        _wait(lambda: socket_path.exists(), 30, "munged did not create its socket")
        # Two nodes of one CPU each on this machine's two cores: one trial on each Ray node at once.
        nodes = "\n".join(f"NodeName={n} NodeHostname={host} NodeAddr=127.0.0.1 Port={_free_port()} CPUs=1 State=UNKNOWN"
                          for n in self.NODES)
        self.conf.write_text(f"""\
# Generated by tests/test_slurm.py for one test run; everything it names lies under {root}.
ClusterName=ibtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket_path}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}/%n
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd'}.%n.pid
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / 'slurmd'}.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
# SIGKILL 10 s after a plain scancel's SIGTERM (Slurm's default is 30 s): Ray nodes whose head went
# down at the same moment would otherwise wait out their 30 s drain.
KillWait=10
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        self._daemon([_find("slurmctld"), "-D", "-f", str(self.conf)])
        for node in self.NODES:
            self._daemon([_find("slurmd"), "-D", "-f", str(self.conf), "-N", node])
        _wait(lambda: self.run("sinfo", "-h", "-o", "%T").split() == ["idle"], 60,
              lambda: "the nodes did not come up: " + self.run("sinfo", "-h", "-N", "-o", "%N %T %E") + self._logs())

    def _daemon(self, command: list) -> None:
        self.daemons.append(subprocess.Popen([str(c) for c in command], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, env=self.env, start_new_session=True))

    def _logs(self) -> str:
        return "".join(f"\n--- {p.name}\n" + p.read_text()[-1500:] for p in sorted((self.root / "log").glob("*.log")))

    def stop(self) -> None:
        """``scontrol shutdown`` ends slurmctld and every slurmd; munged goes last."""
        if len(self.daemons) > 1:
            subprocess.run([_find("scontrol"), "shutdown"], env=self.env, capture_output=True, timeout=30)
        for daemon in reversed(self.daemons):
            if daemon is self.daemons[0]:
                daemon.terminate()
            _end(daemon)
        self.daemons.clear()

    def run(self, *command: str) -> str:
        return subprocess.run([_find(command[0]), *command[1:]], capture_output=True, text=True, env=self.env,
                              timeout=60).stdout.strip()

    def job_field(self, job: str, field: str) -> str:
        match = re.search(rf"\b{field}=(\S+)", self.run("scontrol", "show", "job", "-o", job))
        return match.group(1) if match else ""

    # ---- jobs ------------------------------------------------------------------------------------
    @property
    def work(self) -> Path:
        """The submit directory: ray_results, mlflow and the jobs' output files land here."""
        return self.root / "work"

    @property
    def token(self) -> Path:
        return self.root / "ray_auth_token"

    def submit(self, *args: str) -> str:
        env = {k: v for k, v in self.env.items()
               if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "IB_STORAGE", "IB_DATA_DIR", "IB_MLFLOW_DIR",
                            "MLFLOW_TRACKING_URI")}
        env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                    "TMPDIR": str(self.root / "tmp"), "RAY_AUTH_TOKEN_PATH": str(self.token),
                    "IB_MLFLOW_PORT": str(_free_port()), "IB_DASHBOARD_PORT": str(_free_port())})
        self.work.mkdir(exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        done = subprocess.run([_find("sbatch"), "--parsable", "--nodes=2", str(SCRIPT), *args], capture_output=True,
                              text=True, env=env, cwd=self.work, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def output(self, job: str) -> str:
        path = self.work / f"ib-sweep-{job}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_output(self, job: str, pattern: str, timeout: float = 300) -> re.Match:
        """The first match of ``pattern`` (multiline) in the job's output, once it appears."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output(job), re.MULTILINE)
            if match:
                return match
            if not self.run("squeue", "-h", "-j", job, "-o", "%T"):
                break
            time.sleep(0.5)
        pytest.fail(f"job {job}: no {pattern!r} in its output:\n{self.output(job)[-4000:]}")

    def wait_job(self, job: str, timeout: float = 400) -> str:
        """The job's final state, once Slurm lists it no more (every process of it ended)."""
        deadline = time.monotonic() + timeout
        while self.run("squeue", "-h", "-j", job, "-o", "%T"):
            if time.monotonic() > deadline:
                self.run("scancel", job)
                pytest.fail(f"job {job} still ran after {timeout:g} s:\n{self.output(job)[-4000:]}")
            time.sleep(1)
        return self.job_field(job, "JobState")

    def cancel_all(self) -> None:
        jobs = self.run("squeue", "-h", "-o", "%i").split()
        for job in jobs:
            self.run("scancel", job)
        for job in jobs:
            self.wait_job(job, timeout=60)

    def leftovers(self) -> list[str]:
        """Processes the jobs started that still run: they carry the jobs' TMPDIR (read from /proc)."""
        marker, found = f"TMPDIR={self.root / 'tmp'}".encode(), []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if marker in environ.read_bytes().split(b"\0"):
                    found.append(f"{environ.parent.name} {(environ.parent / 'comm').read_text().strip()}")
            except OSError:  # gone meanwhile
                pass
        return found

    def assert_nothing_left(self) -> None:
        """Ray and MLflow ended with their job (a moment's grace for processes that are exiting)."""
        deadline = time.monotonic() + 15
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(1)
        assert not left, f"still running after the job ended: {left}"

    def kill_leftovers(self) -> None:
        for entry in self.leftovers():
            try:
                os.kill(int(entry.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait(condition, timeout: float, message) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(message() if callable(message) else message)
        time.sleep(0.5)


def _end(process: subprocess.Popen, timeout: float = 20) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def slurm(request) -> Slurm:
    if any(_find(program) is None for program in ("sbatch", "slurmctld", "slurmd", "munged")):
        _install_slurm()
    root = Path(tempfile.mkdtemp(prefix="ibslurm", dir="/tmp"))  # short: Ray's socket paths go under it
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    cluster = Slurm(root)
    request.addfinalizer(cluster.stop)
    request.addfinalizer(cluster.kill_leftovers)
    request.addfinalizer(cluster.cancel_all)
    cluster.start()
    return cluster


# ---- sweeps through sbatch --------------------------------------------------------------------

@pytest.mark.slow
def test_a_usage_mistake_fails_the_job_before_ray_starts(slurm):
    job = slurm.submit("no_such_sweep", "--smoke")
    assert slurm.wait_job(job, timeout=120) == "FAILED"
    assert slurm.job_field(job, "ExitCode") == "2:0"
    out = slurm.output(job)
    assert "error: " in out and "no_such_sweep" in out and "Ray head" not in out, out


@pytest.mark.slow
def test_a_stopped_then_cancelled_sweep_resumes_and_lands_everywhere_once(slurm):
    """Three jobs of one sweep: stopped as Slurm stops a job before its time limit (SIGTERM to the
    script alone), cancelled with a plain ``scancel`` (SIGTERM to every process), then ``--resume``d
    to its end; the result is checked as tests/test_sweep_end_to_end.py checks a local sweep."""
    # one trial at a time: the clean stop sent after the first finished trial must land with trials still to run,
    # which two at a time on a loaded machine does not guarantee
    args = [SWEEP, "--smoke", "--set", BETAS, "--max-concurrent", "1"]
    spec = get_sweep(SWEEP).with_overrides(parse_sets([BETAS]), smoke=True)
    trials, uri = spec.num_trials(), f"sqlite:///{slurm.work / 'mlflow' / 'mlflow.db'}"

    # 1. the script's SIGTERM handler: the sweep's own clean stop, then MLflow and Ray
    job = slurm.submit(*args)
    host, port = slurm.wait_output(job, r"MLflow at http://(\S+):(\d+)$").groups()
    slurm.wait_output(job, rf"^\[1/{trials}\]")
    _assert_mlflow_serves_the_head_only(host, int(port))
    slurm.run("scancel", "--batch", "--signal=TERM", job)
    slurm.wait_job(job)
    out = slurm.output(job)
    assert slurm.job_field(job, "ExitCode") == "130:0", out[-4000:]
    assert "SIGTERM received: stopping the sweep" in out and f"sweep {SWEEP} interrupted" in out
    assert f"continue it with: sbatch [the same sbatch options] {SCRIPT} {shlex.join([*args, '--resume'])}\n" in out
    assert "stopped Ray and the MLflow server" in out
    slurm.assert_nothing_left()
    assert slurm.token.stat().st_mode & 0o777 == 0o600  # generated by the first job
    (run_dir,) = sorted((slurm.work / "ray_results").glob(f"{SWEEP}_*"))
    assert json.loads((run_dir / "sweep.json").read_text())["state"] == "interrupted"
    parents, children = mlflow_runs(uri, SWEEP)
    assert [p.info.status for p in parents] == ["KILLED"]
    finished_first = {c.data.tags["ib.trial_id"] for c in children if c.info.status == "FINISHED"}
    assert 1 <= len(finished_first) < trials

    # 2. a plain scancel reaches every process at once, Ray's too: the sweep stops as if killed
    job = slurm.submit(*args, "--resume")
    slurm.wait_output(job, rf"^\[\d+/{trials}\]")  # one more trial finished
    slurm.run("scancel", job)
    assert slurm.wait_job(job) == "CANCELLED"
    slurm.assert_nothing_left()
    assert json.loads((run_dir / "sweep.json").read_text())["state"] != "finished"

    # 3. --resume to the end: every trial once, every epoch once, in parquet and in MLflow
    job = slurm.submit(*args, "--resume")
    assert slurm.wait_job(job) == "COMPLETED", slurm.output(job)[-4000:]
    assert "the sweep exited with code 0" in slurm.output(job)
    slurm.assert_nothing_left()
    assert sorted((slurm.work / "ray_results").glob(f"{SWEEP}_*")) == [run_dir]
    assert json.loads((run_dir / "sweep.json").read_text())["state"] == "finished"
    _assert_lands_everywhere_once(spec, run_dir, uri)
    for trial_id in finished_first:  # a trial that had finished was not run again
        (trial_dir,) = run_dir.glob(f"train_{trial_id}_*")
        assert len((trial_dir / "result.json").read_text().splitlines()) == spec.epochs


def _assert_mlflow_serves_the_head_only(host: str, port: int) -> None:
    """Bound to the head's address alone, and it answers only requests addressed to it (--allowed-hosts)."""
    import urllib.error
    import urllib.request

    assert _listening_addresses(port) == {host}
    url = f"http://{host}:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name={SWEEP}"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert json.load(response)["experiment"]["name"] == SWEEP
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, headers={"Host": f"elsewhere.example:{port}"}), timeout=30)
    assert 400 <= refused.value.code < 500


def _listening_addresses(port: int) -> set[str]:
    """The addresses a TCP socket listens on at ``port``, from /proc/net/tcp and tcp6."""
    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if state == "0A" and int(local_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)  # little-endian 32-bit words
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(socket.AF_INET if size == 4 else socket.AF_INET6, raw))
    return found


def _assert_lands_everywhere_once(spec, run_dir: Path, uri: str) -> None:
    """What tests/test_sweep_end_to_end.py asserts of a finished local sweep, and no duplicates."""
    import pyarrow.parquet as pq

    trials = spec.num_trials()
    epochs, final = read_tables(run_dir)
    assert len(final) == trials and set(final["status"]) == {"TERMINATED"}
    assert len(epochs) == trials * spec.epochs and not epochs.duplicated(["trial_id", "epoch"]).any()
    for axis in spec.grid:
        assert sorted(final[f"config/{axis}"].unique()) == sorted(spec.grid[axis])

    parents, children = mlflow_runs(uri, spec.name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.tags["sweep"] == spec.name and parent.data.tags["git_commit"]
    assert parent.data.tags["version.torch"] and "orchestrator.sweep" in parent.data.tags["command"]
    assert len(children) == trials and len({c.data.tags["ib.trial_id"] for c in children}) == trials
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.params["objective"] == spec.objective
        assert set(child.data.params) >= set(spec.base_config())
        assert metric_steps(uri, child.info.run_id, spec.metric) == list(range(1, spec.epochs + 1))
        row = final[final["trial_id"] == child.data.tags["ib.trial_id"]].iloc[0]
        assert child.data.metrics[spec.metric] == pytest.approx(row[spec.metric])

    evaluations = pq.read_table(run_dir / "evaluations.parquet").to_pandas()
    assert set(evaluations["trial_id"]) == set(final["trial_id"])
    assert set(spec.evaluations) <= set(evaluations["evaluation"])
    reports = run_dir / "reports"
    figures = [f"{name}.png" for name in ("accuracy_vs_beta", "rate_vs_beta") if name in spec.reports]
    for file in ("report.md", "report.html", *figures):
        assert (reports / file).stat().st_size > 0, file
    assert parent.info.artifact_uri.startswith((Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri())
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(parent.info.run_id, "reports")}
    assert "reports/report.md" in artifacts
