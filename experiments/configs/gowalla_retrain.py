r"""Searched architectures retrained on the full Gowalla split.

  python -m experiments.baselines \
      --config=experiments/configs/gowalla_retrain.py \
      --workdir=/tmp/gowalla_retrain --config.data_dir=../shared/datasets \
      --record=results/records/accuracy_gowalla.jsonl

Three searches each give one candidate, all found on validation only:
- `SUBSAMPLE_BEST`: the best validation NDCG@20 of the 40 architectures
  that the Gowalla-subsample fidelity study trained under the full
  protocol (`results/fidelity_gowalla-sub10_full.jsonl`: a random search
  of the whole space at full fidelity on a seeded 10% of the users);
- `ML100K_BEST`: of the accuracy table's four ML-100K searched
  architectures, the one whose tuned setting has the best ML-100K
  validation NDCG@20 at the tuning seed (0.2979: "adversarial, 77 min",
  with the lr and L2 its tuning selected);
- `NEGATIVES_SEARCH_BEST`: the best of an adversarial search of the
  Gowalla subsample whose loss decision includes sampled softmax over 128
  negatives (`--config.space='loss=bpr/softmax/softmax-128'`, 2,400 s,
  160 evaluations at the search's low fidelity;
  `results/gowalla-sub10_search_softmax-128.json`).
Each is retrained as found on all 29,858 users of the LightGCN split (10%
of each user's training items held out for validation) with the protocol
of `experiments/configs/train.py`, once per seed, and tested by full
ranking over all 40,981 items; the one to report is the one with the
better full-split validation NDCG@20.
The published figures below train on all of each user's training items;
to set a model beside them like for like, retrain its selected run on
every training pair for as many epochs as validation chose
(`--config.data.given_valid_ratio=0 --config.epochs=<its best epoch>`:
no validation, no early stopping, the last state tested).
Published on this split (Recall@20 / NDCG@20, trained on all of each
user's training items): LightGCN 0.1830 / 0.1554 (He et al. 2020); on the
BARS open benchmark, UltraGCN 0.1862 / 0.1580 and SimpleX 0.1872 / 0.1557.

With `--record`, every finished seed is added to the record and never
trained again; seeds may be shared out between processes
(`--config.seeds='(1,)'`), and the command with every seed then reports
from the record.
"""

import ml_collections

from experiments.configs import train

# The subsample study's best on validation (0.0591; test 0.0691 there).
SUBSAMPLE_BEST = (
    'width=128,layers=0,norm=sym,readout=mean,edge_dropout=0.0,'
    'decoder=cosine,temperature=0.1,loss=bpr,lr=0.003,l2=1e-05,agg=,act=,'
    'residual=')
# The ML-100K searches' best on ML-100K validation, at its tuned setting.
ML100K_BEST = (
    'width=128,layers=1,norm=right,readout=concat,edge_dropout=0.1,'
    'decoder=cosine,temperature=0.2,loss=softmax,lr=0.01,l2=1e-05,'
    'agg=ngcf,act=relu,residual=1')

# The adversarial search's best with 128 negatives in its space (0.0593 at
# 8 epochs of batch 8192 on the subsample).
NEGATIVES_SEARCH_BEST = (
    'width=32,layers=4,norm=sym,readout=last,edge_dropout=0.3,decoder=dot,'
    'temperature=0.1,loss=softmax-128,lr=0.01,l2=1e-05,'
    'agg=sage/gat/ngcf/gcn,act=relu/elu/identity/identity,residual=1/1/0/0')


def get_config() -> ml_collections.ConfigDict:
  """Returns the retraining configuration."""
  config = train.get_config()
  config.dataset = 'gowalla'
  config.data.split = 'given'
  config.progress = False
  config.archs = (SUBSAMPLE_BEST, ML100K_BEST, NEGATIVES_SEARCH_BEST)
  config.seeds = (0, 1, 2)
  config.kind = 'searched'
  # No grid: each candidate keeps the lr and L2 it was selected with (on
  # the subsample, or by the ML-100K tuning).
  config.tuning = ml_collections.ConfigDict()
  config.tuning.lr = ()
  config.tuning.l2 = ()
  config.tuning.negatives = ()
  config.tuning.seed = 0
  return config
