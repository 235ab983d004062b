r"""A search on a 10% Gowalla user sample whose finalists are retrained and
tested on the full LightGCN split, beside the published numbers.

  python -m experiments.search --config=experiments/configs/gowalla_search.py \
      --workdir=/tmp/gowalla_search --config.data_dir=../shared/datasets

The search sees a seeded 10% of the users (given split, 10% of each
user's training items held out for validation, every test pair kept);
its `final.top_k` best architectures and LightGCN are then retrained on
all 29,858 users with the training protocol of
`experiments/configs/train.py` (early stopping on validation) and tested
by full ranking over all 40,981 items. Published on this split (Recall@20
/ NDCG@20): LightGCN 0.1830 / 0.1554 (He et al. 2020); on the BARS open
benchmark, UltraGCN 0.1862 / 0.1580 and SimpleX 0.1872 / 0.1557.

Cost: a LightGCN epoch on the full split takes 67 s on 2 CPU cores (see
the README), so the retraining (each finalist and the reference, with
every seed, hundreds of epochs) is meant for an accelerator; every run
resumes, so it may be continued across sessions.
"""

import ml_collections

from experiments.configs import search


def get_config() -> ml_collections.ConfigDict:
  """Returns the Gowalla search configuration."""
  config = search.get_config()
  config.dataset = 'gowalla'
  config.data.split = 'given'
  config.data.user_fraction = 0.1
  config.data.unseen_test_ids = 'miss'
  config.final.user_fraction = 1.0
  config.final.reference = 'lightgcn'
  return config
