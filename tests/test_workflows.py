"""The GitHub Actions workflows parse as YAML and have the structure GitHub expects (on, jobs, steps)."""
from pathlib import Path

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"


def load(name):
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(workflow, dict), f"{name}: not a mapping"
    return workflow


def steps(workflow):
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def uses(workflow):
    return [step["uses"].split("@")[0] for step in steps(workflow) if "uses" in step]


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.y*ml")))
def test_structure(name):
    workflow = load(name)
    assert workflow.get("name"), f"{name}: no name"
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert triggers, f"{name}: no `on` triggers"
    jobs = workflow.get("jobs")
    assert isinstance(jobs, dict), f"{name}: no jobs"
    assert jobs, f"{name}: no jobs"
    for job_id, job in jobs.items():
        assert "runs-on" in job, f"{name}: job {job_id} has no runs-on"
        assert isinstance(job.get("steps"), list), f"{name}: job {job_id} has no steps"
        assert job["steps"], f"{name}: job {job_id} has no steps"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{name}: {job_id} step needs exactly one of uses/run: {step}"
            if "uses" in step:
                assert "@" in step["uses"], f"{name}: {step['uses']} is not pinned to a version"
        for need in [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", []):
            assert need in jobs, f"{name}: {job_id} needs unknown job {need}"


def test_both_workflows_exist():
    assert {p.name for p in WORKFLOWS.glob("*.yml")} >= {"notebooks.yml", "book.yml"}


def test_notebooks_workflow_runs_paper_scale_on_gpu():
    workflow = load("notebooks.yml")
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]
    runs = " ".join(step.get("run", "") for step in job["steps"])
    assert "qtbook.run_notebooks" in runs
    assert "--profile paper" in runs
    assert "actions/upload-artifact" in uses(workflow)


def test_book_workflow_builds_and_deploys_pages():
    workflow = load("book.yml")
    runs = " ".join(step.get("run", "") for step in steps(workflow))
    assert "make book" in runs
    assert "tests/test_book.py" in runs
    assert {"actions/upload-pages-artifact", "actions/deploy-pages"} <= set(uses(workflow))
    assert workflow["permissions"].get("pages") == "write"
    assert workflow["permissions"].get("id-token") == "write"
    deploy = next(job for job in workflow["jobs"].values()
                  if any("deploy-pages" in s.get("uses", "") for s in job["steps"]))
    assert deploy["environment"]["name"] == "github-pages"
