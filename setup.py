"""gnas-jax: adversarial graph neural architecture search for recommendation."""

import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent


def _requirements(path):
  lines = (_HERE / path).read_text().splitlines()
  return [line.strip() for line in lines
          if line.strip() and not line.startswith('#')]


setuptools.setup(
    name='gnas-jax',
    version='0.1.0',
    description=('Adversarial graph neural architecture search for '
                 'recommender systems, in JAX/Flax.'),
    long_description=(_HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=setuptools.find_packages(include=['gnas_jax', 'gnas_jax.*']),
    install_requires=_requirements('requirements.txt'),
    extras_require={
        'tpe': ['optuna>=4'],
        # NAS-Bench-Graph's tables (gnas_jax.bench).
        'bench': ['nas-bench-graph>=1.4'],
        # The notebook runs in the tests through a Jupyter kernel.
        'test': ['pytest>=8', 'pytest-xdist>=3', 'optuna>=4',
                 'nbclient>=0.10', 'nbformat>=5.10', 'ipykernel>=6',
                 'nas-bench-graph>=1.4'],
    },
    license='Apache-2.0',
)
