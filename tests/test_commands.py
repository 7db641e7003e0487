"""``hybrid <job>``: one command for every job, with the configs the package ships, from any
directory and from a non-editable install."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from hybrid.commands import JOBS, main
from tests.conftest import ROOT

EVERY_JOB = [
    "train",
    "infer",
    "export",
    "benchmark",
    "evaluate",
    "evaluate-video",
    "report",
    "prepare",
    "prune",
    "synthetic",
    "synthetic-video",
    "serve",
    "survey",
]


def test_hybrid_help_lists_every_job_and_each_one_resolves(capsys):
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert list(JOBS) == EVERY_JOB and all(f"  {name} " in listed for name in EVERY_JOB)
    for name, job in JOBS.items():
        module, function = job.module, "main"
        assert callable(getattr(__import__(module, fromlist=[function]), function)), name
    assert main(["nosuch"]) == 2 and "no job 'nosuch'" in capsys.readouterr().err


def test_a_job_finds_its_config_from_another_directory(tmp_path):
    """The package's own configs (hybrid/conf), not a conf/ beside the working directory."""
    result = subprocess.run(
        [sys.executable, "-m", "hybrid.commands", "export"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    output = result.stdout + result.stderr  # the job's log goes to stdout
    assert result.returncode == 2 and "ckpt_path is required" in output and "Traceback" not in output, output


@pytest.mark.slow
def test_every_hydra_job_composes_its_config_in_a_process_of_its_own(tmp_path):
    """``hybrid <job> --cfg job`` for each job at once, each in a fresh process: the schemas its
    config extends are registered by the job's own imports, from any directory (slow: eleven
    fresh processes importing torch, ~45 s on 2 cores)."""
    jobs = [name for name, job in JOBS.items() if not job.serving]  # serve and survey are no Hydra apps
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "hybrid.commands", name, "--cfg", "job"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in jobs
    }
    printed = {name: process.communicate(timeout=300)[0] for name, process in started.items()}
    failed = {name: text[-800:] for name, text in printed.items() if started[name].returncode != 0}
    assert not failed
    assert "task_name: train" in printed["train"] and "momentum: 0.9" in printed["train"]
    assert "smoothing_s: 1.0" in printed["infer"] and "num_train: 2000" in printed["synthetic"]


@pytest.mark.slow
def test_a_non_editable_install_runs_train_and_infer_from_another_directory(tmp_path):
    """pip install <checkout> (a copy, not editable) into a new venv; its dependencies are this
    venv's (PYTHONPATH), so only hybrid itself comes from the copy. From an empty directory,
    hybrid train and hybrid infer work, with the configs inside the installed package."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", str(ROOT)], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"], "WANDB_MODE": "offline"}
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import hybrid; print(hybrid.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True)  # fmt: skip
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    hybrid = str(venv / "bin" / "hybrid")
    listed = subprocess.run([hybrid, "--help"], cwd=work, env=env, capture_output=True, text=True)
    assert all(f"  {name} " in listed.stdout for name in EVERY_JOB)
    run = work / "outputs" / "run"
    trained = subprocess.run(
        [hybrid, "train", "experiment=quickstart", "trainer.max_epochs=1", "data.sampling_ratio=0.2",
         "trainer.progress_bar=false", f"hydra.run.dir={run}"],
        cwd=work, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (run / "metrics.json").is_file() and (work / "data" / "synthetic").is_dir()
    inferred = subprocess.run(
        [hybrid, "infer", f"ckpt_path={run}/checkpoints/best.pt", "progress_bar=false", f"hydra.run.dir={work / 'infer'}"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert inferred.returncode == 0, inferred.stderr[-3000:]
    assert (work / "infer" / "predictions.csv").is_file() and (work / "infer" / "infer.log").is_file()
    assert not Path(ROOT / "outputs" / "run").exists()


def test_every_job_is_a_module_of_hybrid_jobs_with_one_entry():
    """``hybrid.commands.JOBS`` lists one kind of thing: modules of ``hybrid.jobs`` whose
    ``main(argv, prog)`` runs the job, each runnable with ``python -m`` too."""
    for name, job in JOBS.items():
        assert job.module == f"hybrid.jobs.{name.replace('-', '_')}", name
        source = (ROOT / Path(*job.module.split("."))).with_suffix(".py").read_text()
        assert "\nmain = HydraJob(" in source or "\ndef main(argv: list[str] | None = None, prog: str" in source, name
        assert 'if __name__ == "__main__":\n    sys.exit(main())' in source, name


@pytest.mark.parametrize(
    ("module", "why"),
    [
        ("hybrid.data.cache_builder", "is not a job: it runs nothing"),  # the prepare job's old path was like this
        ("hybrid.jobs.two_stage", "is not a job: it runs nothing"),
        ("hybrid.prepare", "does not exist"),  # a job's old path
    ],
)
def test_python_m_of_what_runs_nothing_is_refused_in_one_line(module, why, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", module, "data=csv"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result
    assert result.stderr.strip() == (
        f"python -m {module} {why}; run a job with hybrid <job> (hybrid --help lists them) or python -m hybrid.jobs.<job>"
    )
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_python_m_of_a_job_runs_it(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hybrid.jobs.evaluate", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2 and "predictions must be set on the command line" in result.stdout + result.stderr
