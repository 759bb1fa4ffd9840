"""Sample-quality metrics on the standard Inception features (inception.py) and the latent-path
metrics of a trained generator (latent.py): each in its own file, registered by name
(registry.py); float64 statistics (stats.py), cached reference features (cache.py), records
beside checkpoints (records.py) and the homework's protocol (evaluate.py)."""

# Importing each metric registers it (genlab.metrics.registry.METRICS); a new metric is one line.
from genlab.metrics import fid, kid, latent, precision_recall  # noqa: F401
