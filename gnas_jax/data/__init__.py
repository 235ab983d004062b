"""Interaction data: readers, preprocessing, splits and the dataset registry.

`load_dataset(config)` is the entry point; the building blocks below are
public so that scripts, notebooks and tests can reuse them.
"""

from gnas_jax.data.dataset import concatenate
from gnas_jax.data.dataset import Dataset
from gnas_jax.data.dataset import IndexedInteractions
from gnas_jax.data.dataset import Interactions
from gnas_jax.data.dataset import write_recbole_split
from gnas_jax.data.loading import load_dataset
from gnas_jax.data.loading import locate
from gnas_jax.data.loading import SYNTHETIC
from gnas_jax.data.preprocessing import encode_ids
from gnas_jax.data.preprocessing import first_occurrences
from gnas_jax.data.preprocessing import index_pairs
from gnas_jax.data.preprocessing import kcore_mask
from gnas_jax.data.preprocessing import lookup_ids
from gnas_jax.data.preprocessing import preprocess
from gnas_jax.data.preprocessing import sample_users
from gnas_jax.data.preprocessing import UNSEEN_ID_RULES
from gnas_jax.data.readers import COLUMNS
from gnas_jax.data.readers import DELIMITERS
from gnas_jax.data.readers import FORMATS
from gnas_jax.data.readers import infer_format
from gnas_jax.data.readers import parse_columns
from gnas_jax.data.readers import read_interactions
from gnas_jax.data.readers import read_lightgcn_split
from gnas_jax.data.registry import cache_dir
from gnas_jax.data.registry import checksums_enabled
from gnas_jax.data.registry import DATASETS
from gnas_jax.data.registry import DatasetInfo
from gnas_jax.data.registry import download_file
from gnas_jax.data.registry import resolve
from gnas_jax.data.registry import search_folders
from gnas_jax.data.registry import sha256_of
from gnas_jax.data.registry import sorted_sha256_of
from gnas_jax.data.registry import verify_files
from gnas_jax.data.splits import holdout_sizes
from gnas_jax.data.splits import partition
from gnas_jax.data.splits import sort_pairs
from gnas_jax.data.splits import split_given
from gnas_jax.data.splits import split_leave_one_out
from gnas_jax.data.splits import split_random_ratio
from gnas_jax.data.splits import split_temporal_ratio
from gnas_jax.data.splits import SPLITS
from gnas_jax.data.splits import TEST
from gnas_jax.data.splits import TRAIN
from gnas_jax.data.splits import VALID
from gnas_jax.data.synthetic import generate_synthetic
