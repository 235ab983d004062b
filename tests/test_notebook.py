"""The quick-start notebook runs from top to bottom (small settings)."""

import os
import pathlib

import nbclient
import nbformat

NOTEBOOK = pathlib.Path(__file__).parent.parent / 'notebooks/quickstart.ipynb'


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
  monkeypatch.setenv('GNAS_NOTEBOOK_SMOKE', '1')
  monkeypatch.setenv('GNAS_NOTEBOOK_WORKDIR', str(tmp_path / 'work'))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  # Cells run from notebooks/, as in a clone.
  nbclient.NotebookClient(
      notebook, timeout=600, kernel_name='python3',
      resources={'metadata': {'path': str(NOTEBOOK.parent)}}).execute()
  outputs = ''.join(
      o.get('text', '') for cell in notebook.cells if cell.cell_type == 'code'
      for o in cell.get('outputs', []))
  assert 'architectures evaluated' in outputs
  assert 'test ndcg@20' in outputs
  assert 'Top 10 for user' in outputs
  assert os.path.exists(tmp_path / 'work/best/model/model.json')
