r"""Trains and tests RecBole's LightGCN on a fixed, pre-split dataset.

This is the reference side of a LightGCN comparison. It runs RecBole 1.2.1 on
exactly the train/valid/test split it is given as RecBole "benchmark" atomic
files, with no re-splitting and no filtering, and writes the test metrics and
the training speed to a JSON file.

Input layout (one implicit interaction per row, tab-separated, each file
starting with the header line `user_id:token<TAB>item_id:token`):

  DATA_DIR/NAME/NAME.train.inter
  DATA_DIR/NAME/NAME.valid.inter
  DATA_DIR/NAME/NAME.test.inter

It runs in its own environment (see requirements.txt next to this file):

  /work/recbole-venv/bin/python experiments/recbole/run_lightgcn.py \
      --data_dir /tmp/data --dataset ml100k --out /tmp/recbole_ml100k.json

Timing: `train_seconds_per_epoch` is the median over epochs of the wall time
of `Trainer._train_epoch` alone (batch assembly, negative sampling, forward,
backward and optimizer steps), measured with `time.perf_counter`; validation
and checkpointing are excluded. `best_epoch` is RecBole's 0-based epoch index.
"""

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time

import recbole
from recbole.config import Config
from recbole.data import create_dataset
from recbole.data import data_preparation
from recbole.model.general_recommender import LightGCN
from recbole.trainer import Trainer
from recbole.utils import init_logger
from recbole.utils import init_seed
import torch

_SPLITS = ('train', 'valid', 'test')


class TimedTrainer(Trainer):
  """RecBole `Trainer` that records the wall time of every training epoch.

  Attributes:
    train_epoch_seconds: Wall time in seconds of each `_train_epoch` call, in
      call order.
    best_epoch: 0-based index of the epoch with the best validation score so
      far (the checkpoint RecBole keeps and tests), or None before the first
      validation.
  """

  def __init__(self, config, model):
    super().__init__(config, model)
    self.train_epoch_seconds = []
    self.best_epoch = None

  def _train_epoch(self, train_data, epoch_idx, loss_func=None,
                   show_progress=False):
    start = time.perf_counter()
    loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func,
                                show_progress=show_progress)
    self.train_epoch_seconds.append(time.perf_counter() - start)
    return loss

  def track_best_epoch(self, epoch_idx, valid_score):
    """`fit` callback; runs right after RecBole's early-stopping bookkeeping.

    RecBole resets `cur_step` to 0 exactly when the validation score ties or
    beats the best one so far, which is also when it saves the checkpoint that
    is reloaded for testing.

    Args:
      epoch_idx: 0-based epoch index.
      valid_score: Value of `valid_metric` for this epoch (unused).
    """
    del valid_score
    if self.cur_step == 0:
      self.best_epoch = epoch_idx


def parse_args(argv=None):
  """Parses command-line flags.

  Args:
    argv: Argument list; None means `sys.argv[1:]`.

  Returns:
    An `argparse.Namespace` with the parsed flags.
  """
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--data_dir', required=True,
                 help='Folder holding NAME/NAME.{train,valid,test}.inter.')
  p.add_argument('--dataset', required=True, help='Dataset NAME.')
  p.add_argument('--out', required=True, help='Output JSON file.')
  p.add_argument('--embedding_size', type=int, default=64)
  p.add_argument('--n_layers', type=int, default=3)
  p.add_argument('--learning_rate', type=float, default=1e-3)
  p.add_argument('--reg_weight', type=float, default=1e-4)
  p.add_argument('--train_batch_size', type=int, default=2048)
  p.add_argument('--epochs', type=int, default=1000)
  p.add_argument('--stopping_step', type=int, default=10)
  p.add_argument('--eval_step', type=int, default=1)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--topk', default='10,20', help='Comma-separated cut-offs.')
  p.add_argument(
      '--require_pow', action='store_true',
      help='Squared-norm regularizer, sum ||E||_F^2 / (2 * batch), instead of '
      "RecBole's default unsquared one, sum ||E||_F / batch.")
  p.add_argument(
      '--eval_batch_size', type=int, default=1 << 20,
      help='Full-sort evaluation scores this many (user, item) pairs per '
      'batch; changes speed and memory only, never the metrics.')
  p.add_argument(
      '--num_threads', type=int, default=None,
      help="torch intra-op threads (default: torch's own choice).")
  return p.parse_args(argv)


def count_rows(path):
  """Returns the number of non-empty data rows (after the header) of a file."""
  with open(path, encoding='utf-8') as f:
    next(f)
    return sum(1 for line in f if line.strip())


def build_config(args, data_dir, checkpoint_dir):
  """Builds the RecBole `Config` for LightGCN on the benchmark files.

  Args:
    args: Parsed flags.
    data_dir: Absolute folder that holds the `args.dataset` folder.
    checkpoint_dir: Folder where RecBole may save its best checkpoint.

  Returns:
    A `recbole.config.Config`.
  """
  topk = [int(k) for k in args.topk.split(',') if k.strip()]
  config_dict = {
      # --- Data: read the given split as-is. ---
      'data_path': data_dir,
      # With benchmark files RecBole concatenates NAME.{train,valid,test}.inter
      # and cuts them back into the same three parts; it then skips its whole
      # filtering stage (Dataset._data_filtering) and its own splitting. Token
      # ids are only re-indexed (0 is reserved for padding).
      'benchmark_filename': list(_SPLITS),
      'field_separator': '\t',
      'USER_ID_FIELD': 'user_id',
      'ITEM_ID_FIELD': 'item_id',
      'load_col': {'inter': ['user_id', 'item_id']},
      # Neutral filters. They are inactive with benchmark files anyway, but
      # are pinned so that a dataset preset (RecBole ships one for the name
      # "ml-100k") cannot change them.
      'rm_dup_inter': None,
      'val_interval': None,
      'filter_inter_by_user_or_item': False,
      'user_inter_num_interval': '[0,inf)',
      'item_inter_num_interval': '[0,inf)',
      'threshold': None,
      'normalize_all': False,
      # --- Model. ---
      'embedding_size': args.embedding_size,
      'n_layers': args.n_layers,
      'reg_weight': args.reg_weight,
      # RecBole's default is False: EmbLoss is then the sum of the plain
      # (unsquared) Frobenius norms of the batch's user/pos/neg ego embeddings
      # over the batch size. True gives squared norms / batch size / 2 (the
      # original LightGCN's L2 term).
      'require_pow': args.require_pow,
      # --- Training: BPR with one uniform negative per positive. ---
      'epochs': args.epochs,
      'train_batch_size': args.train_batch_size,
      'learner': 'adam',
      'learning_rate': args.learning_rate,
      'weight_decay': 0.0,
      'train_neg_sample_args': {
          'distribution': 'uniform',
          'sample_num': 1,
          'alpha': 1.0,
          'dynamic': False,
          'candidate_num': 0,
      },
      'eval_step': args.eval_step,
      'stopping_step': args.stopping_step,
      'clip_grad_norm': None,
      'shuffle': True,
      # --- Evaluation. ---
      # The split comes from the benchmark files; RecBole reads 'split' only
      # when it splits by itself, so None makes any such attempt fail loudly.
      # Mode 'full' ranks every item, masking the user's earlier-phase items.
      'eval_args': {
          'split': None,
          'group_by': 'user',
          'order': 'RO',
          'mode': {'valid': 'full', 'test': 'full'},
      },
      'repeatable': False,
      'metrics': ['Recall', 'NDCG', 'Precision', 'Hit', 'MRR'],
      'topk': topk,
      'valid_metric': 'NDCG@20',
      'eval_batch_size': args.eval_batch_size,
      'metric_decimal_place': 6,
      # --- Environment. ---
      'seed': args.seed,
      'reproducibility': True,
      'use_gpu': False,
      'gpu_id': '',  # Empty: RecBole picks torch.device('cpu').
      'worker': 0,
      'checkpoint_dir': checkpoint_dir,
      'show_progress': False,
      'save_dataset': False,
      'save_dataloaders': False,
      'log_wandb': False,
      'state': 'INFO',
  }
  # RecBole also reads `--key=value` items of sys.argv into its config, with
  # top priority; hide this script's own flags from it.
  saved_argv = sys.argv
  sys.argv = saved_argv[:1]
  try:
    config = Config(model='LightGCN', dataset=args.dataset,
                    config_dict=config_dict)
  finally:
    sys.argv = saved_argv
  # For the dataset name "ml-100k" RecBole points data_path at its bundled
  # example copy; always use the given folder.
  config['data_path'] = os.path.join(data_dir, args.dataset)
  return config


def main(argv=None):
  """Trains with early stopping, tests the best epoch, writes the JSON.

  Args:
    argv: Argument list; None means `sys.argv[1:]`.

  Returns:
    The result dict that was written to `--out`.
  """
  args = parse_args(argv)
  t_start = time.perf_counter()
  # RecBole reloads its own checkpoint (which holds non-tensor objects) with a
  # plain torch.load; torch>=2.6 defaults to weights_only=True and refuses it.
  # torch reads this variable at each load. The file is our own, in a temp dir.
  os.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] = '1'
  if args.num_threads:
    torch.set_num_threads(args.num_threads)

  data_dir = os.path.abspath(args.data_dir)
  out_path = os.path.abspath(args.out)
  file_rows = {
      s: count_rows(os.path.join(data_dir, args.dataset,
                                 f'{args.dataset}.{s}.inter'))
      for s in _SPLITS
  }

  old_cwd = os.getcwd()
  with tempfile.TemporaryDirectory(prefix='recbole_lightgcn_') as work_dir:
    # RecBole writes its log and tensorboard files under the working
    # directory; keep them (and the checkpoint) out of the caller's tree.
    os.chdir(work_dir)
    try:
      config = build_config(args, data_dir, os.path.join(work_dir, 'saved'))
      init_seed(config['seed'], config['reproducibility'])
      init_logger(config)
      logger = logging.getLogger()

      dataset = create_dataset(config)
      logger.info(dataset)
      train_data, valid_data, test_data = data_preparation(config, dataset)
      # pylint: disable=protected-access
      split_sets = dict(zip(_SPLITS, (train_data._dataset,
                                      valid_data._dataset,
                                      test_data._dataset)))
      # pylint: enable=protected-access
      counts = {s: d.inter_num for s, d in split_sets.items()}
      if counts != file_rows:
        raise RuntimeError(
            f'RecBole interaction counts {counts} differ from the file row '
            f'counts {file_rows}: rows were dropped or added.')

      # Same seeding order as recbole.quick_start.run_recbole.
      init_seed(config['seed'] + config['local_rank'],
                config['reproducibility'])
      model = LightGCN(config, split_sets['train']).to(config['device'])
      logger.info(model)

      trainer = TimedTrainer(config, model)
      _, best_valid = trainer.fit(
          train_data, valid_data, saved=True, show_progress=False,
          callback_fn=trainer.track_best_epoch)
      # Reloads the best checkpoint saved during fit.
      test_result = trainer.evaluate(test_data, load_best_model=True)
    finally:
      os.chdir(old_cwd)

  total_seconds = time.perf_counter() - t_start
  epoch_seconds = trainer.train_epoch_seconds
  result = {
      'test/recall@10': float(test_result['recall@10']),
      'test/recall@20': float(test_result['recall@20']),
      'test/ndcg@10': float(test_result['ndcg@10']),
      'test/ndcg@20': float(test_result['ndcg@20']),
      'test/precision@20': float(test_result['precision@20']),
      'test/hit@20': float(test_result['hit@20']),
      'test/mrr@20': float(test_result['mrr@20']),
      'valid/ndcg@20': float(best_valid['ndcg@20']),
      'best_epoch': int(trainer.best_epoch),
      'epochs_run': len(epoch_seconds),
      'train_seconds_per_epoch': float(statistics.median(epoch_seconds)),
      'train_seconds_per_epoch_all': [float(s) for s in epoch_seconds],
      'total_seconds': float(total_seconds),
      'num_train': int(counts['train']),
      'num_valid': int(counts['valid']),
      'num_test': int(counts['test']),
      'recbole_version': recbole.__version__,
      'torch_version': torch.__version__,
      'torch_threads': int(torch.get_num_threads()),
  }
  os.makedirs(os.path.dirname(out_path) or '.', exist_ok=True)
  with open(out_path, 'w', encoding='utf-8') as f:
    json.dump(result, f, indent=2)
    f.write('\n')

  print(f'RecBole {result["recbole_version"]} LightGCN on {args.dataset}: '
        f'train/valid/test = '
        f'{counts["train"]}/{counts["valid"]}/{counts["test"]}\n'
        f'  best epoch {result["best_epoch"]} of {result["epochs_run"]} run, '
        f'valid NDCG@20 {result["valid/ndcg@20"]:.4f}\n'
        f'  test Recall@20 {result["test/recall@20"]:.4f}  '
        f'NDCG@20 {result["test/ndcg@20"]:.4f}  '
        f'Recall@10 {result["test/recall@10"]:.4f}  '
        f'NDCG@10 {result["test/ndcg@10"]:.4f}\n'
        f'  training {result["train_seconds_per_epoch"]:.3f} s/epoch (median) '
        f'on {result["torch_threads"]} torch threads; '
        f'total {total_seconds:.1f} s\n'
        f'  written to {out_path}')
  return result


if __name__ == '__main__':
  main()
