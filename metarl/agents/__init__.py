"""metarl's algorithms, one per module, registered here by name (``--algo``).

Each entry names its module and class as a string: importing this package imports no
algorithm, and an agent's module is loaded when the algorithm is first used.
"""

from metarl.core.registry import register_algo

register_algo("rl2", "metarl.agents.rl2:RL2", "rl", "RL²: recurrent policy adapting in its hidden state, PPO over trials")
register_algo("random", "metarl.agents.random_policy:RandomAgent", "rl", "uniformly random actions (any RL family)")
register_algo("greedy", "metarl.agents.bandit_baselines:GreedyAgent", "rl", "bandit: arm of highest posterior mean")
register_algo(
    "epsilon_greedy", "metarl.agents.bandit_baselines:EpsilonGreedyAgent", "rl", "bandit: greedy, random arm w.p. epsilon"
)
register_algo("ucb1", "metarl.agents.bandit_baselines:UCB1Agent", "rl", "bandit: UCB1 with Beta(1,1) pseudo-counts")
register_algo("thompson", "metarl.agents.bandit_baselines:ThompsonAgent", "rl", "bandit: Thompson sampling, Beta(1,1) prior")
register_algo(
    "bayes_optimal", "metarl.agents.bandit_baselines:BayesOptimalAgent", "rl", "bandit: Bayes-optimal DP (small k, n only)"
)
register_algo("maml", "metarl.agents.maml:MAML", "supervised", "MAML / Meta-SGD (--meta-sgd): few-shot learning by inner gradient steps")
register_algo("siamese", "metarl.agents.siamese:Siamese", "supervised", "Siamese net: weighted-L1 similarity of pairs, nearest support")
register_algo("lstm", "metarl.agents.lstm_learner:LSTMLearner", "supervised", "LSTM meta-learner: reads (x_t, y_{t-1}), learns in its state")
register_algo("protonet", "metarl.agents.protonet:ProtoNet", "supervised", "prototypical networks: Conv-4, distance to class means")
register_algo(
    "finetune", "metarl.agents.finetune:Finetune", "supervised", "pretrained Conv-4 classifier, new head fitted per episode"
)
register_algo("nearest_neighbour", "metarl.agents.nearest_neighbour:NearestNeighbour", "supervised", "1-NN on pixels")
register_algo("psrl", "metarl.agents.psrl:PSRLAgent", "rl", "tabular MDPs: posterior sampling (PSRL), Dirichlet/Gaussian prior")
register_algo(
    "maml_pg", "metarl.agents.maml_pg:MAMLPG", "rl", "MAML policy gradient (TRPO/PPO outer, --meta-sgd); --inner-steps 0: pretrained baseline"
)
