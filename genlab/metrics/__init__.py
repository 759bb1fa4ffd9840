"""Sample-quality metrics: FID (fid.py) and KID (kid.py) on the standard Inception features
(inception.py), float64 statistics (stats.py), cached reference features (cache.py) and the
homework's protocol (evaluate.py)."""
