r"""Recommends with an exported model (a training workdir or its model/).

  python -m experiments.recommend --model_dir=WORKDIR --user=196 [--k=20]
      [--exclude_seen=True]
  python -m experiments.recommend --model_dir=WORKDIR --history=50,181,258
  python -m experiments.recommend --model_dir=WORKDIR --similar_to=50

`--user` takes one or more raw user ids (comma-separated); `--history`
recommends for a new user from the raw ids of items they interacted with
(cold start by fold-in); `--similar_to` lists the items closest to an item.
"""

from absl import app
from absl import flags

from experiments import common
from gnas_jax import recommend

_MODEL_DIR = flags.DEFINE_string('model_dir', None,
                                 'Exported model, or the workdir holding it.')
_USERS = flags.DEFINE_list('user', [], 'Raw user ids.')
_HISTORY = flags.DEFINE_list('history', [],
                             'Raw item ids of a new user (fold-in).')
_SIMILAR = flags.DEFINE_string('similar_to', None,
                               'Raw item id: list the most similar items.')
_K = flags.DEFINE_integer('k', 20, 'Items to return.')
_EXCLUDE_SEEN = flags.DEFINE_bool('exclude_seen', True,
                                  'Leave out items the user interacted with.')
flags.mark_flags_as_required(['model_dir'])


def _print(title, ranked):
  print(title)
  for rank, (item, score) in enumerate(ranked, 1):
    print(f'{rank:4d}  item {item:>10}  score {score:.4f}')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  if not (_USERS.value or _HISTORY.value or _SIMILAR.value):
    raise app.UsageError('Give --user, --history or --similar_to.')
  common.quiet_library_logs()
  model = recommend.Recommender.load(_MODEL_DIR.value)
  for user, ranked in zip(_USERS.value, model.recommend(
      _USERS.value, _K.value, _EXCLUDE_SEEN.value) if _USERS.value
                          else []):
    _print(f'user {user}:', ranked)
  if _HISTORY.value:
    _print(f'new user with items {",".join(_HISTORY.value)}:',
           model.recommend_for_histories([_HISTORY.value], _K.value,
                                         _EXCLUDE_SEEN.value)[0])
  if _SIMILAR.value:
    _print(f'items similar to {_SIMILAR.value}:',
           model.similar_items(_SIMILAR.value, _K.value))


if __name__ == '__main__':
  # Unknown user and item ids are KeyErrors.
  common.run(main, common.USER_ERRORS + (KeyError,))
