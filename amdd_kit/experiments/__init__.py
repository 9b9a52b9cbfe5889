"""Experiments that train runs and compare them (notebook 06).

* :mod:`.runs` -- is a run folder current, train or reuse it, the cached train-split embeddings;
* :mod:`.row_scores` -- what one ablation row scores: linear probes on frozen embeddings, per-clip
  correctness, the paired hierarchical bootstrap;
* :mod:`.ablation` -- the ablation rows, the runner that trains and scores them, the table files;
* :mod:`.shortcut` -- the leading-silence shortcut audit and its one-threshold detector.

Import each from where it lives (``from amdd_kit.experiments import ablation``); this package
re-exports nothing.
"""
