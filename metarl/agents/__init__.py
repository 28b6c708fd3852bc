"""metarl's algorithms, one per module, registered here by name (``--algo``).

Each entry names its module and class as a string: importing this package imports no
algorithm, and an agent's module is loaded when the algorithm is first used.
"""

from typing import Literal

from metarl.core.registry import register_algo

_BUILTINS: tuple[tuple[str, str, Literal["rl", "supervised", "any"], str], ...] = (
    # (--algo name, module:Class under metarl.agents, kind, summary)
    ("rl2", "rl2:RL2", "rl", "RL²: recurrent policy adapting in its hidden state, PPO over trials"),
    ("maml_pg", "maml_pg:MAMLPG", "rl",
     "MAML policy gradient (TRPO/PPO outer, --meta-sgd); --inner-steps 0: pretrained baseline"),
    ("ppo", "sb3:PPOAgent", "rl",
     "SB3 PPO baseline: --mode multitask (--recurrent: RecurrentPPO over trials), oracle, scratch"),
    ("sac", "sb3:SACAgent", "rl", "SB3 SAC baseline (continuous actions): --mode multitask, oracle, scratch"),
    ("random", "random_policy:RandomAgent", "rl", "uniformly random actions (any RL family)"),
    ("greedy", "bandit_baselines:GreedyAgent", "rl", "bandit: arm of highest posterior mean"),
    ("epsilon_greedy", "bandit_baselines:EpsilonGreedyAgent", "rl", "bandit: greedy, random arm w.p. epsilon"),
    ("ucb1", "bandit_baselines:UCB1Agent", "rl", "bandit: UCB1 with Beta(1,1) pseudo-counts"),
    ("thompson", "bandit_baselines:ThompsonAgent", "rl", "bandit: Thompson sampling, Beta(1,1) prior"),
    ("bayes_optimal", "bandit_baselines:BayesOptimalAgent", "rl", "bandit: Bayes-optimal DP (small k, n only)"),
    ("psrl", "psrl:PSRLAgent", "rl", "tabular MDPs: posterior sampling (PSRL), Dirichlet/Gaussian prior"),
    ("maml", "maml:MAML", "supervised", "MAML / Meta-SGD (--meta-sgd): few-shot learning by inner gradient steps"),
    ("protonet", "protonet:ProtoNet", "supervised", "prototypical networks: Conv-4, distance to class means"),
    ("matching", "matching:Matching", "supervised",
     "matching networks: cosine attention over the support set (--fce: full context embeddings)"),
    ("siamese", "siamese:Siamese", "supervised", "Siamese net: weighted-L1 similarity of pairs, nearest support"),
    ("lstm", "lstm_learner:LSTMLearner", "supervised", "LSTM meta-learner: reads (x_t, y_{t-1}), learns in its state"),
    ("snail", "snail:SNAIL", "supervised", "SNAIL: temporal convolutions and causal attention over the support sequence"),
    ("finetune", "finetune:Finetune", "supervised", "pretrained Conv-4 classifier, new head fitted per episode"),
    ("nearest_neighbour", "nearest_neighbour:NearestNeighbour", "supervised", "1-NN on pixels"),
)

for _name, _entry, _kind, _summary in _BUILTINS:
    register_algo(_name, f"metarl.agents.{_entry}", _kind, _summary)
