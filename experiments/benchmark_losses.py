r"""Times one training step of an architecture under each of several losses.

  python -m experiments.benchmark_losses \
      --config=experiments/configs/train.py --config.dataset=gowalla \
      --config.data.split=given --config.data_dir=../shared/datasets \
      --config.arch=mf --losses=softmax-128,shared-softmax-4096

For each loss of `--losses`, `--config.arch` with that loss is trained one
model at a time as `experiments.train` trains it (the full training graph,
batches of `config.batch_size`): prints the seconds to draw an epoch's
batches, the median of `--steps` timed steps (after one that compiles), and
an epoch's training time from the two (`steps per epoch x step + draw`;
evaluation not included). Sampled softmax over negatives drawn per positive
gathers `[B, N, D]` rows; over negatives shared by the mini-batch it
multiplies `[B, D] x [D, N]`, which this measures.
"""

import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

from experiments import common
from gnas_jax import driver
from gnas_jax import models
from gnas_jax import space
from gnas_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/train.py', 'Training configuration.',
    lock_config=True)
_LOSSES = flags.DEFINE_list(
    'losses', ['bpr', 'softmax', 'softmax-128', 'shared-softmax-1024',
               'shared-softmax-4096'],
    'Losses to time (`gnas_jax.space` choices of the loss decision).')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps per loss.')


def time_loss(config, data: driver.TrainingData, arch: space.Architecture
              ) -> dict[str, float]:
  """`{'draw', 'step', 'epoch'}` seconds of `arch` trained alone."""
  dataset = data.dataset
  model = models.build_model(dataset.num_users, dataset.num_items, [arch])
  state = train.init_state(model, train.create_optimizer(config),
                           data.graph, jnp.asarray(arch.encode()),
                           jax.random.PRNGKey(config.seed))
  sampler = driver.single_model_sampler(config, dataset, arch)
  start = time.perf_counter()
  batches = jax.device_put(sampler.epoch(0))
  draw = time.perf_counter() - start
  key = jax.random.PRNGKey(config.seed + 1)
  seconds = []
  for step in range(_STEPS.value + 1):
    batch = jax.tree.map(lambda x, s=step % sampler.steps_per_epoch: x[s],
                         batches)
    start = time.perf_counter()
    state, metrics = train.train_step(model, state, data.graph, batch, key)
    jax.block_until_ready(metrics)
    seconds.append(time.perf_counter() - start)
  step_seconds = float(np.median(seconds[1:]))
  return {'draw': draw, 'step': step_seconds,
          'epoch': sampler.steps_per_epoch * step_seconds + draw}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  config = _CONFIG.value
  unknown = [loss for loss in _LOSSES.value
             if loss not in space.DECISION_BY_NAME['loss'].choices]
  if unknown:
    raise app.UsageError(
        f'--losses: {", ".join(unknown)} not among the loss choices '
        f'{", ".join(space.DECISION_BY_NAME["loss"].choices)}.')
  data = driver.TrainingData.from_config(config)
  base = space.from_string(config.arch)
  print(f'{data.dataset.name}: {len(data.dataset.train)} training pairs, '
        f'batch {config.batch_size}, {jax.devices()[0].platform}')
  print('| loss | draw an epoch (s) | step (s) | epoch (s) |')
  print('| --- | ---: | ---: | ---: |')
  for loss in _LOSSES.value:
    arch = space.from_string(f'{base.to_string()},loss={loss}')
    timing = time_loss(config, data, arch)
    print(f'| {loss} | {timing["draw"]:.2f} | {timing["step"]:.4f} | '
          f'{timing["epoch"]:.1f} |', flush=True)


if __name__ == '__main__':
  common.run(main)
