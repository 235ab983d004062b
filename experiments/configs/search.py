r"""Architecture search: the training protocol of `train.py` plus the search.

  python -m experiments.search --config=experiments/configs/search.py \
      --workdir=/tmp/gnas_search --config.dataset=ml-100k \
      --config.data_dir=../shared/datasets [--config.strategy=random]

Candidates train at low fidelity (`fidelity`); the finalists and the
reference preset are retrained with the full protocol (`epochs`,
`patience`, ...) inherited from `train.py`, once per `final.seeds`.
"""

import ml_collections

from experiments.configs import train as train_config


def get_config() -> ml_collections.ConfigDict:
  """Returns the search configuration."""
  config = train_config.get_config()

  # 'adversarial' | 'random' | 'evolution' | 'reinforce' | 'tpe' | 'local'.
  config.strategy = 'adversarial'
  # Evaluations (rounded up to whole populations without refills); 0 sets
  # no limit, for a search that max_wall_seconds ends.
  config.budget = 208
  # Wall-time limit of the search in seconds (0: none).
  config.max_wall_seconds = 0
  # Candidates trained at once per round.
  config.population_size = 16
  # '' for the whole space, or restrictions such as 'width=32/64,layers=1/2'.
  config.space = ''
  # 'map' or 'vmap' ('' picks from the platform, see gnas_jax.population).
  config.population_mode = ''

  # Low fidelity for the search's evaluations. Larger batches than the
  # final protocol make an epoch cheap; a candidate stops after `patience`
  # evaluations without a better validation NDCG@20.
  config.fidelity = ml_collections.ConfigDict()
  # As the training options of the same names, for a candidate.
  config.fidelity.epochs = 8
  config.fidelity.eval_every = 2
  config.fidelity.patience = 2
  config.fidelity.batch_size = 8192
  # Successive halving inside a round: at each of these epochs of its own
  # (increasing, at most fidelity.epochs) a candidate goes on only if it
  # is among the best 1/eta of the round's candidates that reached it; ()
  # halves nothing.
  config.fidelity.rungs = ()
  config.fidelity.eta = 3
  # New proposals per round that take the slots successive halving frees,
  # asked from the strategy after it is told the stopped candidates'
  # scores; the round goes on until none trains (0: no refills).
  config.fidelity.refill = 0

  # Each strategy's options with their defaults, as plain values so that
  # any of them can be set from the command line (see each strategy's
  # class in gnas_jax/search/strategies/; a test keeps these defaults equal
  # to the classes'). An option a strategy does not take is an error.
  config.strategies = ml_collections.ConfigDict()
  # GA-NAS-style: a discriminator learns the best architectures so far
  # against a generator's samples, which it ranks (AdversarialSearch).
  config.strategies.adversarial = {
      'hidden': 64, 'truth_size': 10, 'truth_fraction': 0.25,
      'warmup': 0, 'ranking_factor': 8, 'rank_with_discriminator': True,
      'discriminator_steps': 50, 'generator_steps': 20,
      'batch_size': 64, 'generator_learning_rate': 3e-3,
      'discriminator_learning_rate': 1e-3, 'label_smoothing': 0.1,
      'r1_weight': 0.1, 'entropy_weight': 1e-2, 'pairwise': True,
      'archive_negatives': True, 'refit_weight': 1.0, 'clip': 0.2,
      'ppo_epochs': 4, 'mutations': 8,
      # Share of proposals that probe a neglected choice (0: none).
      'coverage': 0.0}
  # Uniform over decisions.
  config.strategies.random = {}
  # Regularized (aging) evolution.
  config.strategies.evolution = {'population': 32, 'sample_size': 8}
  # A GraphNAS-style controller trained by REINFORCE.
  config.strategies.reinforce = {
      'hidden': 64, 'learning_rate': 3.5e-3, 'entropy_weight': 1e-2,
      'baseline_decay': 0.9, 'steps_per_round': 4, 'oversample': 4}
  # Optuna's TPE (needs the [tpe] extra).
  config.strategies.tpe = {'startup_trials': 10}
  # Local search with random restarts.
  config.strategies.local = {}

  # Retraining at full fidelity: the best `top_k` distinct architectures
  # and the reference preset, each with every seed.
  config.final = ml_collections.ConfigDict()
  config.final.top_k = 3
  config.final.seeds = (0, 1, 2)
  # The preset retrained beside the finalists ('' for none).
  config.final.reference = 'lightgcn'
  # The share of users the finalists and the reference are retrained and
  # tested on (1.0 with a search on a subsample: the full dataset), for
  # data.split='given'; None: the search's own data.
  config.final.user_fraction = ml_collections.config_dict.placeholder(float)
  return config
