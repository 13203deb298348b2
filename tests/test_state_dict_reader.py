"""The one reader of weights files (vssl_helpers.models.checkpoints.read_state_dict): plain state
dicts of models without an official layout (demo models, plugins) and the errors of every kind of
file that is not a checkpoint, each naming the file."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from vssl_helpers.models import create_model
from vssl_helpers.models.checkpoints import CheckpointError, UnreadableCheckpointError, load, read_state_dict

MODEL = "demo-random"  # a model without an official checkpoint layout


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return create_model(MODEL, seed=3).state_dict()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "model_state_dict", "dataparallel"])
def test_plain_state_dict_is_found_where_users_put_it(tmp_path: Path, state: dict[str, torch.Tensor], wrap: str) -> None:
    path = tmp_path / "w.pth"
    if wrap == "bare":
        obj: object = state
    elif wrap == "dataparallel":
        obj = {f"module.{k}": v for k, v in state.items()}
    else:
        obj = {wrap: state, "epoch": 7}
    torch.save(obj, path)
    read, info = read_state_dict(path, MODEL)
    assert _same(read, state)
    assert info["top_level_key"] == (None if wrap in ("bare", "dataparallel") else wrap)
    assert info["stripped_prefix"] == (len(state) if wrap == "dataparallel" else 0)
    if wrap not in ("bare", "dataparallel"):
        assert info["extra_entries"] == ["epoch"]


def test_first_plain_key_that_holds_a_mapping_wins(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "w.pth"
    torch.save({"model": "resnet", "model_state_dict": state}, path)  # 'model' is a name here, not weights
    read, info = read_state_dict(path, MODEL)
    assert _same(read, state) and info["top_level_key"] == "model_state_dict"


def _not_checkpoints(tmp: Path, state: dict[str, torch.Tensor]) -> dict[str, Path]:
    good = tmp / "good.pth"
    torch.save(state, good)
    files = {
        "empty": b"",
        "truncated": good.read_bytes()[: good.stat().st_size // 2],
        "notes": b"these are my notes, not weights\n",
        "random bytes": b"xyz\x00\x01\x02 not a pickle",
        "plain pickle": pickle.dumps([1, 2, 3], protocol=2),
    }
    out = {}
    for name, data in files.items():
        out[name] = tmp / f"{name.replace(' ', '_')}.pth"
        out[name].write_bytes(data)
    return out


@pytest.mark.parametrize("model", [MODEL, "ezvsl"])
def test_files_that_are_not_checkpoints_say_so_and_name_the_file(tmp_path: Path, state: dict[str, torch.Tensor],
                                                                  model: str) -> None:
    for kind, path in _not_checkpoints(tmp_path, state).items():
        with pytest.raises(UnreadableCheckpointError) as e:
            read_state_dict(path, model)
        assert str(path) in str(e.value) and e.value.path == path
        if kind == "empty":
            assert e.value.reason == "the file is empty (0 bytes); expected a PyTorch checkpoint (torch.save)"
        else:
            assert e.value.reason.startswith("cannot be read as a PyTorch checkpoint (")
            assert "torch.save" in e.value.reason
        if kind == "truncated":
            assert "truncated or corrupted zip archive" in e.value.reason
        assert isinstance(e.value, CheckpointError), "callers that catch CheckpointError still catch it"


def test_load_of_an_official_model_reports_an_unreadable_file_before_building(tmp_path: Path) -> None:
    path = tmp_path / "ezvsl.pth"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(UnreadableCheckpointError, match=r"load\('ezvsl'\): checkpoint .*ezvsl.pth: cannot be read"):
        load("ezvsl", path)


class _Pickled:
    """An arbitrary Python object: weights_only loading refuses to build it."""


def test_python_objects_are_refused_not_called_unreadable(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "objects.pth"
    torch.save({"state_dict": state, "extra": _Pickled()}, path)
    with pytest.raises(CheckpointError, match=r"refusing checkpoint .*objects.pth.*pickled Python objects.*_Pickled") as e:
        read_state_dict(path, MODEL)
    assert not isinstance(e.value, UnreadableCheckpointError)


@pytest.mark.parametrize(
    "obj, message",
    [
        ([torch.zeros(2)], r"holds a list, expected a mapping"),
        ({"epoch": 3, "notes": "x"},
         r"has no state dict, neither bare nor under 'state_dict'/'model'/'model_state_dict'; its top-level entries are \['epoch', 'notes'\]"),
        ({"state_dict": {"w": torch.zeros(1), "step": 3}}, r"1 state-dict entries are not tensors: \['step'\]"),
        ({"module.w": torch.zeros(1), "w": torch.zeros(1)}, r"key 'w' duplicates another key once 'module.' is removed"),
    ],
)
def test_checkpoints_without_a_usable_state_dict(tmp_path: Path, obj: object, message: str) -> None:
    path = tmp_path / "odd.pth"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=message) as e:
        read_state_dict(path, MODEL)
    assert str(path) in str(e.value) and not isinstance(e.value, UnreadableCheckpointError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint file .*none.pth does not exist"):
        read_state_dict(tmp_path / "none.pth", MODEL)
