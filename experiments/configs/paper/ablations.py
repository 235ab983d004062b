r"""Ablations of the adversarial strategy on the search-efficiency benchmark.

  python -m experiments.reproduce --table=ablations --scale=small \
      --workdir=/tmp/gnas_paper --data_dir=../shared/datasets

Each variant changes one option of the adversarial strategy (see
`gnas_jax.search.strategies.AdversarialSearch`) and searches the tabular
benchmark of `search_efficiency.py` with the same seeds, batch and budget:
without the discriminator's ranking of proposals (generator only), without
the R1 gradient penalty, without the entropy bonus, and with other
truth-set sizes. The benchmark is shared with search_efficiency, so after
that table this one costs only its searches (minutes).
"""

import ml_collections

from experiments.configs.paper import search_efficiency

VARIANTS = {
    'adversarial (defaults)': {},
    'no discriminator ranking': {'rank_with_discriminator': False},
    'no R1 penalty': {'r1_weight': 0.0},
    'no entropy bonus': {'entropy_weight': 0.0},
    'truth set 2': {'truth_size': 2},
    'truth set 8': {'truth_size': 8},
    'truth set 16': {'truth_size': 16},
}


def get_config(scale: str = 'small') -> ml_collections.ConfigDict:
  """Returns the ablations configuration at `scale`."""
  config = search_efficiency.get_config(scale)
  # In the order above, for the table's rows.
  config.variants = ml_collections.ConfigDict(VARIANTS, sort_keys=False)
  return config
