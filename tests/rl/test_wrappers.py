"""The RL² trial wrapper that lets single-env libraries (sb3-contrib) train on metarl families."""

import metarl
from metarl.conformance import check_env_strictly
from metarl.rl.wrappers import RL2TrialEnv


def test_trial_env_wraps_a_family_for_other_libraries():
    env = RL2TrialEnv(metarl.make_family("metarl/Bandit-v0", k=3, n=7))
    check_env_strictly(env)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (1 + 3 + 2,) and not obs[1:].any()
    for t in range(7):
        obs, reward, terminated, truncated, _ = env.step(2)
        assert obs[1 + 2] == 1.0 and obs[-2] == reward and obs[-1] == 1.0
        assert terminated == (t == 6) and not truncated
