r"""Ablations of the adversarial strategy on the search-efficiency benchmark.

  python -m experiments.reproduce \
      --config=experiments/configs/paper/ablations.py:small \
      --workdir=/tmp/gnas_paper --data_dir=../shared/datasets

Each variant changes one option of the adversarial strategy (see
`gnas_jax.search.strategies.AdversarialSearch`) and searches the tabular
benchmark of `search_efficiency.py` with the same seeds, batch and budget:
with a binary instead of a pairwise discriminator, without the evaluated
negatives, without the truth-set refit, with plain REINFORCE instead of
PPO, without the discriminator's ranking, and without truth-set
mutations. The benchmark is shared with search_efficiency, so after
that table this one costs only its searches (minutes).
"""

import ml_collections

from experiments.configs import paper
from experiments.configs.paper import search_efficiency

# Each variant turns off one part of the adversarial strategy (the same
# variants as on NAS-Bench-Graph, `experiments.benchmark_search`).
VARIANTS = {
    'adversarial': {},
    'adversarial-binary': {'pairwise': False},
    'adversarial-no-negatives': {'archive_negatives': False},
    'adversarial-no-refit': {'refit_weight': 0.0},
    'adversarial-reinforce': {'clip': 0.0},
    'adversarial-no-ranking': {'rank_with_discriminator': False},
    'adversarial-no-mutations': {'mutations': 0},
}


def get_config(scale: str = 'small') -> ml_collections.ConfigDict:
  """Returns the ablations configuration at `scale`."""
  paper.check_scale(scale)
  config = search_efficiency.get_config(scale)
  # In the order above, for the table's rows.
  config.variants = ml_collections.ConfigDict(VARIANTS, sort_keys=False)
  return config
