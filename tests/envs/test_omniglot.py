"""The Omniglot family: reading folders and zips, splits by alphabet, errors, caching, the
shared minimal sets (skipped when absent), and the one-shot benchmark's runs loader."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import metarl
from metarl.core.errors import DatasetError, DatasetNotFoundError
from metarl.core.seeding import task_rng
from metarl.envs import omniglot
from metarl.envs import omniglot_oneshot as oneshot
from metarl.envs.omniglot import OmniglotFamily, OmniglotTask, default_data_root


def family(root, **kw) -> OmniglotFamily:
    return OmniglotFamily(data_root=str(root), queries=2, image_size=16, **kw)


def test_folder_and_zip_give_the_same_images(tiny_omniglot, tiny_omniglot_zip):
    a, b = family(tiny_omniglot), family(tiny_omniglot_zip)
    assert (tiny_omniglot_zip / "images_background_small1.zip").is_file()
    for split in ("train", "test"):
        assert a.pool(split).keys == b.pool(split).keys
        np.testing.assert_array_equal(a.pool(split).images(16, 0).examples, b.pool(split).images(16, 0).examples)
    task = a.sample_tasks(1, "test")[0]
    ea = a.sample_episode(task, 1, 2, np.random.default_rng(0))
    eb = b.sample_episode(task, 1, 2, np.random.default_rng(0))
    assert torch.equal(ea.support_x, eb.support_x) and torch.equal(ea.query_y, eb.query_y)
    assert ea.support_x.shape == (5, 1, 16, 16) and ea.query_x.shape == (10, 1, 16, 16)


def test_images_are_ink_on_zero_background(tiny_omniglot):
    images = family(tiny_omniglot).pool("train").images(16, 0).examples
    assert images.dtype == np.uint8 and images.shape[1:] == (6, 1, 16, 16)
    assert np.median(images) == 0 and images.max() > 200


def test_images_are_decoded_once_and_cached(tiny_omniglot):
    index = omniglot.set_index(str(tiny_omniglot), "small1")
    assert omniglot.set_images(index, 16) is omniglot.set_images(index, 16)
    assert omniglot.set_index(str(tiny_omniglot), "small1") is index


def test_splits_are_by_alphabet_and_shared_alphabets_are_counted_once(tiny_omniglot):
    f = family(tiny_omniglot)
    train = {t.alphabets[i] for t in f.sample_tasks(50, "train") for i in range(5)}
    test = {t.alphabets[i] for t in f.sample_tasks(50, "test") for i in range(5)}
    assert train == {"Alpha", "Beta", "Greek"} and test == {"Delta", "Gamma"}
    both = family(tiny_omniglot, background="small1+small2", heldout="small2")
    assert len(both.pool("train").keys) == 5 * 6, "Greek is in both sets and must be counted once"
    with pytest.raises(DatasetError, match="no alphabet outside"):
        both.sample_tasks(1, "test")
    assert family(tiny_omniglot, background="small2").pool("test").alphabet_rows.keys() == {"Alpha", "Beta"}


def test_within_alphabet_tasks_and_rotated_training_classes(tiny_omniglot):
    f = family(tiny_omniglot)
    for task in f.sample_tasks(20, "test", task_rng(0, "test")):
        assert len(set(task.alphabets)) == 1 and set(task.angles) == {0}
    ood = f.sample_tasks(20, "ood")
    assert all(a % 90 == 45 for t in ood for a in t.angles)
    angles = {a for t in f.sample_tasks(20, "train") for a in t.angles}
    assert angles == {0, 90, 180, 270}
    assert {a for t in family(tiny_omniglot, rotations=False).sample_tasks(20, "train") for a in t.angles} == {0}
    data, rows, turns = f.class_dataset("train")
    assert len(rows) == 4 * data.num_classes == 4 * 18, "rotations make 4x the training classes"
    with pytest.raises(DatasetError, match="no alphabet has 7 classes"):
        family(tiny_omniglot, ways=7).sample_tasks(1, "test")
    # Across-alphabet test tasks may mix alphabets; within-alphabet training ones may not.
    assert any(len(set(t.alphabets)) > 1 for t in family(tiny_omniglot, test_scope="across").sample_tasks(20, "test"))
    assert all(len(set(t.alphabets)) == 1 for t in family(tiny_omniglot, train_scope="within").sample_tasks(20, "train"))


def test_rotated_task_episodes_are_rotated_images(tiny_omniglot):
    f = family(tiny_omniglot)
    task = f.sample_tasks(1, "test")[0]  # distinct characters (a training task may turn one twice)
    plain = OmniglotTask(task.alphabets, task.characters, (0,) * 5)
    turned = OmniglotTask(task.alphabets, task.characters, (90,) * 5)
    a = f.sample_episode(plain, 1, 1, np.random.default_rng(0))
    b = f.sample_episode(turned, 1, 1, np.random.default_rng(0))
    assert torch.equal(torch.rot90(a.support_x, 1, (-2, -1)), b.support_x)


def test_tasks_round_trip_and_episodes_reject_foreign_tasks(tiny_omniglot):
    f = family(tiny_omniglot)
    task = f.sample_tasks(1, "ood")[0]
    assert f.task_from_json(json.loads(json.dumps(task.to_json()))) == task
    with pytest.raises(DatasetError, match="not among"):
        f.sample_episode(OmniglotTask(("Alpha",) * 5, ("character99",) * 5, (0,) * 5), 1, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="5 classes"):
        f.sample_episode(OmniglotTask(("Alpha",), ("character01",), (0,)), 1, 1, np.random.default_rng(0))


def test_missing_data_errors_name_what_was_expected(tmp_path):
    with pytest.raises(DatasetNotFoundError) as exc:
        family(tmp_path).sample_tasks(1)
    message = str(exc.value)
    assert "images_background_small1/" in message and "images_background_small1.zip" in message
    with pytest.raises(DatasetNotFoundError, match="--data-root"):
        family("").sample_tasks(1)
    with pytest.raises(ValueError, match="unknown Omniglot set 'small3'"):
        family(tmp_path, background="small3")


def test_corrupt_data_errors_are_clear(tmp_path, tiny_omniglot):
    (tmp_path / "images_background_small1.zip").write_bytes(b"this is not a zip")
    with pytest.raises(DatasetError, match="not a readable zip"):
        family(tmp_path).sample_tasks(1)
    bad = tmp_path / "folder"
    glyph = bad / "images_background_small1" / "Alpha" / "character01"
    glyph.mkdir(parents=True)
    for i in range(3):
        (glyph / f"{i}.png").write_bytes(b"not a png")
    f = OmniglotFamily(data_root=str(bad), ways=1, queries=1, image_size=16)
    with pytest.raises(DatasetError, match=r"cannot decode .*0\.png"):
        f.sample_episode(f.sample_tasks(1)[0], 1, 1, np.random.default_rng(0))
    empty = tmp_path / "empty" / "images_background_small1"
    empty.mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"<alphabet>/<character>/\*\.png"):
        OmniglotFamily(data_root=str(empty.parent)).sample_tasks(1)


@pytest.mark.skipif(not (default_data_root() and Path(default_data_root()).exists()), reason="the shared Omniglot data is absent")
def test_shared_minimal_sets():
    f = metarl.make_family("metarl/Omniglot-v0")
    index1 = omniglot.set_index(f.data_root, "small1")
    index2 = omniglot.set_index(f.data_root, "small2")
    assert len(index1.classes) == 136 and len(index2.classes) == 156
    assert set(index1.alphabets) & set(index2.alphabets) == {"Greek", "Latin"}
    assert set(f.pool("test").alphabet_rows) == {"Japanese_(katakana)", "Sanskrit", "Tagalog"}
    both = metarl.make_family("metarl/Omniglot-v0", background="small1+small2")
    assert len(both.pool("train").keys) == 136 + 156 - 24 - 26
    tasks = metarl.make_family("metarl/Omniglot-v0", ways=20).sample_tasks(30, "test")
    assert "Tagalog" not in {t.alphabets[0] for t in tasks}, "Tagalog has only 17 characters"
    assert f.examples_available(f.sample_tasks(3, "test")) == 20


# -- the one-shot benchmark ---------------------------------------------------------------------


def test_oneshot_runs_loader_parses_the_fixture(oneshot_runs):
    runs = oneshot.load_runs(oneshot_runs, image_size=16)
    assert [r.name for r in runs] == ["run01", "run02", "run03"]
    for run in runs:
        lines = (oneshot_runs / run.name / "class_labels.txt").read_text().split("\n")
        ep = run.episode
        assert ep.support_x.shape == (4, 1, 16, 16) and ep.query_x.shape == (4, 1, 16, 16)
        assert ep.support_y.tolist() == [0, 1, 2, 3]
        for line, label in zip(lines, ep.query_y.tolist(), strict=False):
            test, train = line.split()
            assert train == f"{run.name}/training/class{label + 1:02d}.png" and test in run.test
    # The same runs from a zip with an all_runs/ folder inside.
    archive = oneshot_runs.parent / "zipped" / "all_runs.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as z:
        for path in oneshot_runs.rglob("*"):
            if path.is_file():
                z.write(path, f"all_runs/{path.relative_to(oneshot_runs)}")
    zipped = oneshot.load_runs(archive.parent, image_size=16)
    for a, b in zip(runs, zipped, strict=True):
        assert torch.equal(a.episode.query_x, b.episode.query_x) and torch.equal(a.episode.query_y, b.episode.query_y)


def test_oneshot_scoring_counts_errors_per_run(oneshot_runs):
    runs = oneshot.load_runs(oneshot_runs, image_size=16)
    perfect = oneshot.score_runs(lambda ep: ep.query_y, runs)
    assert perfect["error_rate"]["mean"] == 0.0 and perfect["num_runs"] == 3
    wrong_one = oneshot.score_runs(lambda ep: torch.where(torch.arange(len(ep.query_y)) == 0, -1, ep.query_y), runs)
    assert [r["errors"] for r in wrong_one["runs"]] == [1, 1, 1]
    assert wrong_one["error_rate"]["mean"] == pytest.approx(0.25)
    assert "run02:  1/4 wrong" in oneshot.summary(wrong_one)


def test_oneshot_loader_errors(tmp_path, oneshot_runs):
    with pytest.raises(DatasetNotFoundError, match="class_labels.txt"):
        oneshot.load_runs(tmp_path)
    broken = tmp_path / "broken"
    (broken / "run01" / "training").mkdir(parents=True)
    (broken / "run01" / "training" / "class01.png").write_bytes((oneshot_runs / "run01/training/class01.png").read_bytes())
    (broken / "run01" / "class_labels.txt").write_text("run01/test/item01.png run01/training/class07.png\n")
    with pytest.raises(DatasetError, match="line 1"):
        oneshot.load_runs(broken)
