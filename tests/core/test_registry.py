"""The family registry: lookups, errors, user modules, entry points, Gymnasium ids."""

import importlib.metadata
import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import pytest

import metarl
from metarl.core import registry
from metarl.core.registry import UnknownIdError

USER_MODULE = textwrap.dedent(
    """
    import dataclasses
    from metarl.envs.bandit import BanditFamily
    import metarl

    @dataclasses.dataclass(frozen=True)
    class TwoArmed(BanditFamily):
        '''A user's family: a two-armed bandit with short trials.'''
        k: int = 2
        n: int = 10

    def register_all():
        metarl.register("{ns}/TwoArmed-v0", TwoArmed)

    register_all()
    """
)


def _write_module(tmp_path, monkeypatch, name, ns):
    (tmp_path / f"{name}.py").write_text(USER_MODULE.format(ns=ns))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_builtins_are_listed_and_made_with_defaults_and_overrides():
    assert "metarl/Bandit-v0" in metarl.list_families()
    assert "metarl/Bandit-v0" in metarl.list_families(kind="rl")
    family = metarl.make_family("metarl/Bandit-v0", k=3)
    assert (family.k, family.n) == (3, 100)


@pytest.mark.slow
def test_importing_metarl_registers_every_builtin_without_importing_any():
    code = (
        "import sys, metarl\n"
        "loaded = [m for m in sys.modules if m.startswith(('metarl.envs.', 'metarl.agents.'))]\n"
        "assert not loaded, loaded\n"
        "assert 'metarl/Omniglot-v0' in metarl.list_families() and 'rl2' in [a.name for a in metarl.list_algos()]\n"
        "import gymnasium as gym\n"
        "gym.make('metarl/Nav2D-v0')\n"
        "assert 'metarl.envs.nav2d' in sys.modules and 'metarl.envs.bandit' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registered_kind_is_the_family_class_kind():
    for spec in registry.family_specs():
        if spec.available:
            assert spec.load().kind == spec.kind, spec.id


def test_unknown_id_names_close_matches():
    with pytest.raises(UnknownIdError, match="Did you mean 'metarl/Bandit-v0'"):
        metarl.make_family("metarl/Bandt-v0")
    with pytest.raises(UnknownIdError, match="Did you mean 'metarl/Bandit-v0'"):
        metarl.make_family("metarl/Bandit-v7")  # wrong version


def test_unknown_and_bad_kwargs_say_which():
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['arms'\].*accepts k, n"):
        metarl.make_family("metarl/Bandit-v0", arms=3)
    with pytest.raises(ValueError, match="k .* must be >= 1"):
        metarl.make_family("metarl/Bandit-v0", k=0)


def test_registered_with_gymnasium_single_and_vector():
    env = gym.make("metarl/Bandit-v0", k=4)
    assert env.action_space == gym.spaces.Discrete(4)
    vec = gym.make_vec("metarl/Bandit-v0", num_envs=7, k=4)
    assert type(vec.unwrapped).__name__ == "BatchedTaskEnv" and vec.num_envs == 7
    spec = gym.spec("metarl/Bandit-v0")
    assert spec.entry_point is not None and spec.vector_entry_point is not None


def test_module_colon_id_imports_the_users_module_first(tmp_path, monkeypatch):
    name = _write_module(tmp_path, monkeypatch, "user_families_a", "usera")
    family = metarl.make_family(f"{name}:usera/TwoArmed-v0")
    assert family.k == 2 and registry.family_spec(f"{name}:usera/TwoArmed-v0").id == "usera/TwoArmed-v0"
    assert gym.make("usera/TwoArmed-v0").action_space.n == 2
    sys.modules.pop(name, None)


def test_entry_point_group_is_loaded_when_an_id_is_missing(tmp_path, monkeypatch):
    name = _write_module(tmp_path, monkeypatch, "user_families_b", "userb")
    ep = importlib.metadata.EntryPoint(name="userb", value=f"{name}:register_all", group=registry.ENTRY_POINT_GROUP)

    def fake_entry_points(group=None, **kw):
        return [ep] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    assert metarl.make_family("userb/TwoArmed-v0").n == 10
    sys.modules.pop(name, None)


def test_bad_ids_and_conflicting_registrations_are_refused():
    with pytest.raises(ValueError, match="must look like"):
        metarl.register("no version", "metarl.envs.bandit:BanditFamily", kind="rl")
    with pytest.raises(ValueError, match="already registered"):
        metarl.register("metarl/Bandit-v0", "metarl.envs.bandit:BanditTask", kind="rl")
    with pytest.raises(ValueError, match="kind must be"):
        metarl.register("mine/Odd-v0", "metarl.envs.bandit:BanditFamily", kind="other")  # type: ignore[arg-type]


def test_algorithms_are_listed_and_unknown_names_suggest():
    names = [a.name for a in metarl.list_algos()]
    assert "rl2" in names
    with pytest.raises(UnknownIdError, match="Did you mean 'rl2'"):
        registry.algo_spec("rl3")


def _install_plugin(tmp_path, name, ns, body):
    """A package on ``sys.path`` with a ``.dist-info`` declaring a ``metarl.families`` entry point,
    as ``pip install`` of a plugin leaves it."""
    (tmp_path / f"{name}.py").write_text(body.format(ns=ns))
    info = tmp_path / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{ns} = {name}\n")


@pytest.mark.slow
def test_an_installed_plugins_families_resolve_through_gymnasium_once_metarl_is_imported(tmp_path):
    _install_plugin(tmp_path, "plugin_good", "plugc", USER_MODULE)
    _install_plugin(tmp_path, "plugin_broken", "plugd", "raise RuntimeError('boom')\n")
    code = ("import warnings, gymnasium as gym\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    import metarl\n"
            "assert any('plugin_broken' in str(w.message) and 'boom' in str(w.message) for w in caught), caught\n"
            "env = gym.make('plugc/TwoArmed-v0')\n"
            "print(env.action_space.n, 'plugc/TwoArmed-v0' in metarl.list_families())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "True"]
