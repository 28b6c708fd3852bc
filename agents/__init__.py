"""metarl algorithms."""

from metarl.registry import register_algo

register_algo("rl2", "agents.rl2:RL2", "rl", "RL²: recurrent policy adapting in its hidden state, PPO over trials")
register_algo("random", "agents.random_policy:RandomAgent", "rl", "uniformly random actions (any RL family)")
register_algo("greedy", "agents.bandit_baselines:GreedyAgent", "rl", "bandit: arm of highest posterior mean")
register_algo(
    "epsilon_greedy", "agents.bandit_baselines:EpsilonGreedyAgent", "rl", "bandit: greedy, random arm w.p. epsilon"
)
register_algo("ucb1", "agents.bandit_baselines:UCB1Agent", "rl", "bandit: UCB1 with Beta(1,1) pseudo-counts")
register_algo("thompson", "agents.bandit_baselines:ThompsonAgent", "rl", "bandit: Thompson sampling, Beta(1,1) prior")
register_algo(
    "bayes_optimal", "agents.bandit_baselines:BayesOptimalAgent", "rl", "bandit: Bayes-optimal DP (small k, n only)"
)
