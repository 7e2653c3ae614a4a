"""The typed run spec (qt_helpers.spec): the CLI maps onto it one to one, a recipe resolves into it, its key
names a run, and `run(spec)` trains what it says."""
import dataclasses
import json

import pytest

from qt_helpers.cli import OUTPUTS, build_train_parser, spec_from_argv
from qt_helpers.run import Outputs, run
from qt_helpers.spec import RunSpec


def test_the_cli_options_are_the_spec_and_the_outputs_one_to_one():
    dests = {a.dest for a in build_train_parser()._actions} - {"help", "debug"}
    spec = {f.name for f in dataclasses.fields(RunSpec)}
    assert dests == spec | OUTPUTS
    assert not spec & OUTPUTS
    assert {f.name for f in dataclasses.fields(Outputs)} - {"progress"} == OUTPUTS - {"no_progress"}


@pytest.mark.parametrize("spec", [
    RunSpec(),
    RunSpec.create("improved", dataset="cifar10", blocks=19, seed=43, n_train=500),
    RunSpec.create("classical", dataset="fashion_mnist", budget=1497, standardize=True, lr=3e-3),
    RunSpec.create("tuned", control="classical-generator", val_fraction=0.1, test="never", epochs=10),
    RunSpec(trainable_transform=True, relu=True, shots=8192, init="small", activation="tanh", qubits=14),
])
def test_argv_round_trips_and_the_key_follows_the_settings(spec):
    again = spec_from_argv(spec.argv())
    assert again == spec.resolved()
    assert again.key() == spec.key()
    assert dataclasses.replace(spec, seed=spec.seed + 1).key() != spec.key()
    assert dataclasses.replace(spec, recipe=None).key() == spec.key()  # the recipe is a label: its settings count


def test_a_recipe_resolves_into_the_fields_and_explicit_settings_win():
    spec = RunSpec.create("improved", dataset="cifar10", schedule="plateau")
    assert (spec.model, spec.activation, spec.lr, spec.schedule, spec.standardize) == ("qt", "relu", 3e-3,
                                                                                        "plateau", True)
    assert RunSpec.create("improved").key() == RunSpec(activation="relu", lr=3e-3, schedule="cosine").key()
    with pytest.raises(ValueError, match="trains the classical CNN, not --model qt"):
        RunSpec.create("classical", model="qt")
    with pytest.raises(ValueError, match="unknown run settings: epoch"):
        RunSpec.create("improved", epoch=3)


@pytest.mark.parametrize(("settings", "message"), [
    ({"dataset": "svhn"}, "unknown dataset 'svhn'"),
    ({"blocks": 0}, "--blocks must be a whole number >= 1"),
    ({"n_train": 70000}, "more than mnist's 60,000 images"),
    ({"test": "never"}, "--test never needs --val-fraction"),
    ({"model": "classical", "shots": 10}, "QT options; drop them for --model classical"),
    ({"qubits": 3}, "use at least 13 qubits"),
    ({"device": "cuda:7"}, "--device"),
])
def test_check_refuses_in_one_line_before_any_work(settings, message):
    with pytest.raises(ValueError, match=message):
        RunSpec(**settings).check()


def test_run_trains_the_spec_and_records_it(pack_dir, tmp_path):
    spec = RunSpec.create("tuned", blocks=2, n_train=200, n_test=100, epochs=1)
    record = run(spec, Outputs(json=str(tmp_path / "r.json"), data_dir=str(pack_dir), progress=False))
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["key"] == spec.key() == record["key"]
    assert saved["settings"] == spec.settings()
    assert saved["recipe_name"] == "tuned"
    assert 0 <= saved["test_accuracy"] <= 1
    assert {"commit", "device_name", "torch", "python", "date", "qt_helpers"} <= saved.keys()
    assert spec_from_argv(saved["command"].split()[3:]).key() == spec.key()  # the command reproduces it
