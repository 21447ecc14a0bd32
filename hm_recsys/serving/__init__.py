"""Online serving of a week's recommendations: immutable, versioned snapshots (``snapshot``) and the HTTP
service that loads them (``app``). Pure code: no Dagster imports (the ``serving_snapshot`` asset in
``hm_recsys/defs/assets/serving.py`` calls it)."""
