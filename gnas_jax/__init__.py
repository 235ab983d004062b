"""gnas-jax: graph neural architecture search for recommendation, in JAX.

Train one architecture (the configs live beside the package, in
`experiments/configs/`):

    import gnas_jax
    from experiments.configs import train as train_config

    config = train_config.get_config()
    config.arch = 'lightgcn,layers=2'  # A preset, with overrides.
    results = gnas_jax.train_and_evaluate(config, '/tmp/lightgcn')
    print(results['test/ndcg@20'])
    model = gnas_jax.Recommender.load('/tmp/lightgcn/model')
    model.recommend(['0'], k=20)  # User '0' of the synthetic data.

Search the space, then retrain and test the best architecture:

    from experiments.configs import search as search_config

    summary = gnas_jax.run_search(search_config.get_config(), '/tmp/search')
    print(summary['best_arch'], summary['test_ndcg@20'])

The names below are the entry points; the submodules hold the rest:
`space` (architectures), `models`, `graph`, `train` (pure step functions),
`driver` (the training loop), `population` (many candidates in one
program), `search` (strategies and the search loop), `metrics`, `data`
and `recommend` (exported models). Importing the package leaves TensorFlow
unloaded: only writing summaries needs it.
"""

from gnas_jax import data
from gnas_jax import driver
from gnas_jax import graph
from gnas_jax import metrics
from gnas_jax import models
from gnas_jax import population
from gnas_jax import recommend
from gnas_jax import search
from gnas_jax import space
from gnas_jax import train
from gnas_jax.data import load_dataset
from gnas_jax.driver import train_and_evaluate
from gnas_jax.driver import train_with_seeds
from gnas_jax.population import GroupedPopulation
from gnas_jax.recommend import export_model
from gnas_jax.recommend import Recommender
from gnas_jax.search import make_strategy
from gnas_jax.search import SearchSpace
from gnas_jax.search.loop import run_search
from gnas_jax.space import Architecture
from gnas_jax.space import from_string
from gnas_jax.space import preset

# Kept equal to setup.py's by tests/test_api.py.
__version__ = '0.1.0'

__all__ = [
    # Submodules.
    'data', 'driver', 'graph', 'metrics', 'models', 'population',
    'recommend', 'search', 'space', 'train',
    # Architectures.
    'Architecture', 'from_string', 'preset',
    # Data, training and serving.
    'load_dataset', 'train_and_evaluate', 'train_with_seeds',
    'Recommender', 'export_model',
    # Search.
    'run_search', 'make_strategy', 'SearchSpace', 'GroupedPopulation',
]
