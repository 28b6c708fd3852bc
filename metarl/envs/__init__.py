"""metarl's built-in task families, one per module, registered here by name.

Each entry names its module and class as a string, so importing this package imports no
family: a family's module is loaded when the family is first made (as Gymnasium registers
its environments). Families with optional dependencies list them in ``requires``; without
them they are not listed, and making one says which extra to install.
"""

from metarl.core.registry import register

register("metarl/Bandit-v0", "metarl.envs.bandit:BanditFamily", kind="rl")
register("metarl/TabularMDP-v0", "metarl.envs.tabular_mdp:TabularMDPFamily", kind="rl")
register("metarl/Nav2D-v0", "metarl.envs.nav2d:Nav2DFamily", kind="rl")
register("metarl/Pendulum-v0", "metarl.envs.pendulum:PendulumFamily", kind="rl")
register("metarl/CartPole-v0", "metarl.envs.cartpole:CartPoleFamily", kind="rl")
register("metarl/HiddenGoalGrid-v0", "metarl.envs.gridworld:HiddenGoalGridFamily", kind="rl")

for _name in ("HalfCheetahVel", "HalfCheetahDir", "AntDir", "HalfCheetahDynamics"):
    register(f"metarl/{_name}-v0", f"metarl.envs.mujoco_locomotion:{_name}Family", kind="rl",
             requires=("mujoco",), extra="mujoco")
for _name, _cls in (("ML1", "MetaWorldML1Family"), ("ML10", "MetaWorldML10Family")):
    register(f"metarl/{_name}-v0", f"metarl.envs.metaworld_families:{_cls}", kind="rl",
             requires=("mujoco", "metaworld"), extra="metaworld")

register("metarl/Sinusoid-v0", "metarl.envs.sinusoid:SinusoidFamily", kind="supervised")
register("metarl/Omniglot-v0", "metarl.envs.omniglot:OmniglotFamily", kind="supervised")
register("metarl/Digits-v0", "metarl.envs.digits:DigitsFamily", kind="supervised", requires=("sklearn",), extra="digits")
