r"""Accuracy: hand-designed models against the searched ones, one protocol.

  python -m experiments.reproduce \
      --config=experiments/configs/paper/accuracy.py:small \
      --workdir=/tmp/gnas_paper --data_dir=../shared/datasets

MF-BPR, NGCF, LightGCN, GCN, GraphSAGE, GAT and GIN (the presets of
`gnas_jax.space`) and the best architecture found by each strategy (its
seed-0 search of `search_efficiency.py`, on ML-100K, reused as found on
Gowalla), each trained with every seed under one protocol and tested by
full ranking: mean ± standard deviation of Recall@20 and NDCG@20.

Data: ML-100K, all ratings as implicit feedback, random 80/10/10 split;
Gowalla, the LightGCN split with 10% of each user's training items held
out for validation; at small scale, a seeded 10% of the users and then the
5-core of their training pairs (1,721 users, 2,771 items, 23,349 training
pairs; test pairs of dropped items are dropped).

small: 2 seeds, at most 60 epochs at batch 2048, evaluated every 5 epochs,
  stopped after 4 evaluations without improvement; about 40 minutes on 2
  CPU cores. Models that need hundreds of epochs (LightGCN at learning
  rate 1e-3) are not converged.
full: 5 seeds, the protocol of experiments/configs/train.py (up to 300
  epochs, patience 30), all Gowalla users: about 60 Gowalla runs of up to
  300 epochs each. A LightGCN epoch on full Gowalla takes 67 s on 2 CPU
  cores (see the README), so this scale is meant for a GPU or TPU, where
  it has not been timed.
"""

import ml_collections

from experiments.configs import paper
from experiments.configs import train
from experiments.configs.paper import search_efficiency

HAND_DESIGNED = ('mf', 'ngcf', 'lightgcn', 'gcn', 'graphsage', 'gat', 'gin')


def _protocol(scale: str) -> ml_collections.ConfigDict:
  config = train.get_config()
  config.progress = False
  if scale == 'small':
    # Few evaluations: each also checkpoints, which dominates on Gowalla.
    config.epochs = 60
    config.eval_every = 5
    config.patience = 4
  return config


def get_config(scale: str = 'small') -> ml_collections.ConfigDict:
  """Returns the accuracy configuration at `scale`."""
  paper.check_scale(scale)
  config = ml_collections.ConfigDict()
  config.search = search_efficiency.get_config(scale)
  config.hand_designed = HAND_DESIGNED
  config.seeds = (0, 1) if scale == 'small' else (0, 1, 2, 3, 4)

  ml100k = _protocol(scale)
  ml100k.dataset = 'ml-100k'
  ml100k.data.split = 'random'
  ml100k.data.split_ratios = (0.8, 0.1, 0.1)
  gowalla = _protocol(scale)
  gowalla.dataset = 'gowalla'
  gowalla.data.split = 'given'
  if scale == 'small':
    # A seeded 10% of the users, then the 5-core of their training pairs:
    # 1,721 users and 2,771 items.
    gowalla.data.user_fraction = 0.1
    gowalla.data.kcore = 5
  config.datasets = ml_collections.ConfigDict(
      {'ml-100k': ml100k, 'gowalla': gowalla}, sort_keys=False)
  return config
