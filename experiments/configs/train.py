"""Default configuration for training one recommender.

Launch (synthetic data, LightGCN preset):

  python -m experiments.train --config=experiments/configs/train.py \
      --workdir=/tmp/gnas_train

MovieLens-100K from a local copy:

  python -m experiments.train --config=experiments/configs/train.py \
      --workdir=/tmp/ml100k --config.dataset=ml-100k \
      --config.data_dir=../shared/datasets
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the training configuration."""
  config = ml_collections.ConfigDict()

  # Data: a registered name (see `gnas_jax.data.DATASETS`), 'synthetic', or
  # the path of an interactions file.
  config.dataset = 'synthetic'
  # 'auto' infers the format from the file name; otherwise one of
  # `gnas_jax.data.FORMATS`.
  config.dataset_format = 'auto'
  # Folder searched for `<dataset>/...` before $GNAS_DATA_DIR and the cache.
  config.data_dir = ''
  # Seeds initialisation, negative sampling and dropout (not the split).
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # Interactions with rating >= threshold are positives; 0 keeps them all.
  config.data.rating_threshold = 0.0
  # Share of users kept (drawn with data.split_seed), for smaller versions
  # of large datasets; filters and splits apply to the kept users.
  config.data.user_fraction = 1.0
  # Repeatedly drop users and items with fewer interactions (0 disables).
  config.data.kcore = 0
  # 'random' | 'temporal' | 'leave_one_out' | 'given'
  config.data.split = 'random'
  # Per-user train/validation/test shares of the 'random' and 'temporal'
  # splits.
  config.data.split_ratios = (0.8, 0.1, 0.1)
  # Seeds the random splits, fixed across model seeds so that models and
  # seeds are compared on one split.
  config.data.split_seed = 0
  # For 'given' splits (LightGCN files): share of each user's training
  # interactions carved out for validation.
  config.data.given_valid_ratio = 0.1
  # Test pairs whose user or item is absent from training (after
  # filtering): 'drop' (with a warning), 'error', or 'miss' (an unseen
  # item's pair stays a test item that is never ranked, so a user
  # subsample keeps every test pair of the users it keeps).
  config.data.unseen_test_ids = 'drop'
  # Generic delimited files ('' infers the delimiter).
  config.data.delimiter = ''
  # Whether the first line of a delimited file is a header; None infers it.
  config.data.header = ml_collections.config_dict.placeholder(bool)
  # The file's columns in order ('user,item,-,timestamp'); '' infers them.
  config.data.columns = ''
  # Check registered datasets' files against their recorded sha256
  # (False, or GNAS_VERIFY_CHECKSUMS=0, accepts copies edited on purpose).
  config.data.verify_checksums = True
  # The synthetic generator (the offline default).
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.num_users = 1000
  config.data.synthetic.num_items = 1500
  # Planted communities, shared by users and items.
  config.data.synthetic.num_communities = 8
  # Mean interactions per user.
  config.data.synthetic.interactions_per_user = 40
  # Zipf exponent of item popularity (0: all items equally popular).
  config.data.synthetic.popularity_exponent = 1.0
  # Share of a user's interactions drawn from its own community.
  config.data.synthetic.community_affinity = 0.8
  # Seeds the generated data.
  config.data.synthetic.seed = 0

  # Model: a preset name (`gnas_jax.space.PRESETS`) or an architecture
  # string, optionally a preset followed by overrides ('lightgcn,layers=2').
  # Learning rate and L2 weight are part of the architecture.
  config.arch = 'lightgcn'
  # Propagation backend: 'auto' picks from the graph size, or one of
  # `gnas_jax.graph.BACKENDS`.
  config.backend = 'auto'

  # Training: at most this many epochs (early stopping may end it sooner).
  config.epochs = 300
  # Positive pairs per training step.
  config.batch_size = 2048
  # Negatives per positive for the sampled-softmax loss `softmax` (BPR uses
  # one; `softmax-N` uses N).
  config.num_negatives = 16
  # How an epoch's (user, positive) pairs are drawn: 'pairs' (each training
  # pair once, shuffled) or 'users' (LightGCN's: a uniform user, then one of
  # their items, as many times as there are pairs).
  config.sampling = 'pairs'
  # Epochs between validation evaluations (and checkpoints).
  config.eval_every = 1
  # Evaluations without a better validation score before stopping. Graph
  # recommenders often dip after an early popularity peak before they
  # improve again, so a short patience stops them too early.
  config.patience = 30
  # The validation metric that early stopping and the best state follow.
  config.early_stopping_metric = 'ndcg@20'
  # Adam's moment decays and epsilon; its learning rate is the
  # architecture's own (`lr`), as is the L2 weight (`l2`).
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.eps = 1e-8
  # Continue from the workdir's latest checkpoint when there is one.
  config.resume = True
  # Show a progress bar.
  config.progress = True

  # Evaluation: full ranking over all items, metrics at these cut-offs.
  config.ks = (10, 20)
  # Users ranked at once (memory: this many rows of item scores).
  config.eval_batch_size = 1024

  return config
