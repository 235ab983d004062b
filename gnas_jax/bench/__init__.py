"""Tabular NAS benchmarks as declared search spaces and objectives:
NAS-Bench-Graph (Qin et al., NeurIPS 2022), `pip install 'gnas-jax[bench]'`."""

from gnas_jax.bench.nasbench_graph import DATASETS
from gnas_jax.bench.nasbench_graph import DECISIONS
from gnas_jax.bench.nasbench_graph import NasBenchGraph
from gnas_jax.bench.nasbench_graph import search_space
