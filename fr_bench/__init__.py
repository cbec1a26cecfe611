"""fr_bench: an exact, fast and honest face-recognition benchmark.

Data flows one way: protocol spec -> loader (:mod:`fr_bench.protocols`) -> extractor (:mod:`fr_bench.extract`,
with :mod:`fr_bench.models`) -> embeddings -> ``protocol.evaluate`` -> :mod:`fr_bench.metrics` -> result files
(:mod:`fr_bench.results`) -> reports (:mod:`fr_bench.report`).
"""

__version__ = "0.1.0"
