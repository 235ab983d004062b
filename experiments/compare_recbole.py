r"""Trains LightGCN here and in RecBole 1.2.1 on the identical split.

  python -m experiments.compare_recbole \
      --config=experiments/configs/compare_recbole.py \
      --workdir=/tmp/compare_recbole --config.data_dir=../shared/datasets \
      [--recbole_python=.venv-recbole/bin/python] [--create_recbole_env]

RecBole 1.2.1 needs numpy<2 and scipy<1.11 while JAX needs numpy>=2, so it
runs in its own virtual environment (`experiments/recbole/requirements.txt`;
`--create_recbole_env` builds it at `--recbole_python`'s location) as a
subprocess, on the split this script exports as RecBole benchmark files.
Both runs use the same hyperparameters and early stopping, one after the
other on the same machine. Prints test Recall@20 / NDCG@20 and seconds per
training epoch side by side with their ratios, and writes them to
`WORKDIR/compare_recbole.json`.
"""

import json
import os
import pathlib
import subprocess
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import common
from gnas_jax import data
from gnas_jax import driver
from gnas_jax import space

_ROOT = pathlib.Path(__file__).resolve().parents[1]
_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/compare_recbole.py',
    'Configuration shared by both sides.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
_RECBOLE_PYTHON = flags.DEFINE_string(
    'recbole_python',
    os.environ.get('RECBOLE_PYTHON', str(_ROOT / '.venv-recbole' / 'bin' /
                                         'python')),
    'Python interpreter of the RecBole environment ($RECBOLE_PYTHON).')
_RECBOLE_RESULTS = flags.DEFINE_string(
    'recbole_results', None,
    'A previous RecBole run\'s JSON on the same split, reused instead of '
    'training RecBole again (checked against the split\'s sizes).')
_CREATE_ENV = flags.DEFINE_bool(
    'create_recbole_env', False,
    'Create the RecBole environment at --recbole_python if it is missing.')
flags.mark_flags_as_required(['workdir'])

_REQUIREMENTS = _ROOT / 'experiments' / 'recbole' / 'requirements.txt'
_RUNNER = _ROOT / 'experiments' / 'recbole' / 'run_lightgcn.py'


def _ensure_recbole_env(python: pathlib.Path) -> None:
  if python.exists():
    return
  if not _CREATE_ENV.value:
    raise app.UsageError(
        f'No RecBole environment at {python}. Create one with '
        '--create_recbole_env, or by hand:\n'
        f'  python3 -m venv {python.parents[1]}\n'
        f'  {python.parent}/pip install torch==2.13.0\n'
        f'  {python.parent}/pip install -r {_REQUIREMENTS}\n'
        'and pass --recbole_python (or set $RECBOLE_PYTHON).')
  venv = python.parents[1]
  logging.info('Creating the RecBole environment in %s.', venv)
  subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
  pip = [str(python), '-m', 'pip', 'install', '-q']
  # torch first and pinned: a bare dependency on it could pull a CUDA build.
  subprocess.run(pip + ['torch==2.13.0'], check=True)
  subprocess.run(pip + ['-r', str(_REQUIREMENTS)], check=True)


def _run_recbole(config, split_dir, name, out_path):
  arch = space.from_string(config.arch)
  if [arch.agg, arch.act, arch.norm, arch.readout] != [
      ('lightgcn',) * arch.layers, ('identity',) * arch.layers, 'sym',
      'mean'] or arch.loss != 'bpr' or arch.decoder != 'dot':
    raise ValueError(f'config.arch must be LightGCN for RecBole; got {arch}.')
  command = [
      _RECBOLE_PYTHON.value, str(_RUNNER),
      f'--data_dir={split_dir}', f'--dataset={name}', f'--out={out_path}',
      f'--embedding_size={arch.width}', f'--n_layers={arch.layers}',
      f'--learning_rate={arch.lr}', f'--reg_weight={arch.l2}',
      f'--train_batch_size={config.batch_size}', f'--epochs={config.epochs}',
      f'--stopping_step={config.patience}',
      f'--eval_step={config.eval_every}', f'--seed={config.seed}',
      f'--topk={",".join(str(k) for k in config.ks)}',
      # LightGCN's L2: the squared norms of the batch's layer-0 embeddings.
      '--require_pow',
  ]
  logging.info('Running RecBole: %s', ' '.join(command))
  subprocess.run(command, check=True)
  with open(out_path) as f:
    return json.load(f)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  config = _CONFIG.value
  workdir = pathlib.Path(_WORKDIR.value)
  workdir.mkdir(parents=True, exist_ok=True)
  dataset = data.load_dataset(config)
  if _RECBOLE_RESULTS.value:
    with open(_RECBOLE_RESULTS.value) as f:
      recbole = json.load(f)
    sizes = [len(dataset.train), len(dataset.valid), len(dataset.test)]
    reused = [recbole['num_train'], recbole['num_valid'], recbole['num_test']]
    if sizes != reused:
      raise ValueError(
          f'{_RECBOLE_RESULTS.value} was run on a split of {reused} '
          f'train/valid/test pairs; this split has {sizes}.')
  else:
    _ensure_recbole_env(pathlib.Path(_RECBOLE_PYTHON.value))
    name = dataset.name.replace('-', '')
    split_dir = workdir / 'recbole_data'
    data.write_recbole_split(dataset, split_dir / name, name)
    recbole = _run_recbole(config, split_dir, name,
                           workdir / 'recbole_results.json')
  ours = driver.train_and_evaluate(config, str(workdir / 'gnas_jax'))

  rows = [('test/recall@20', 'test/recall@20'),
          ('test/ndcg@20', 'test/ndcg@20'),
          ('valid/ndcg@20', 'valid/ndcg@20'),
          ('train_seconds_per_epoch', 'train_seconds_per_epoch')]
  summary = {'dataset': dataset.name, 'arch': ours['arch'],
             'seed': int(config.seed), 'patience': int(config.patience),
             'best_epoch': {'gnas_jax': ours['best_epoch'],
                            # RecBole counts epochs from 0.
                            'recbole': recbole['best_epoch'] + 1}}
  lines = ['| measure | gnas-jax | RecBole 1.2.1 | ratio |',
           '| --- | ---: | ---: | ---: |']
  for ours_key, recbole_key in rows:
    a, b = float(ours[ours_key]), float(recbole[recbole_key])
    summary[ours_key] = {'gnas_jax': a, 'recbole': b, 'ratio': a / b}
    lines.append(f'| {ours_key} | {a:.4f} | {b:.4f} | {a / b:.3f} |')
  lines.append(f'| best epoch | {summary["best_epoch"]["gnas_jax"]} | '
               f'{summary["best_epoch"]["recbole"]} | |')
  with open(workdir / 'compare_recbole.json', 'w') as f:
    json.dump(summary, f, indent=2)
  print('\n'.join(lines))


if __name__ == '__main__':
  common.run(main)
