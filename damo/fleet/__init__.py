"""Records of many machines as one Parquet dataset, and SQL over it (DuckDB embedded, or Spark).

``dataset`` defines the versioned schema and finds datasets, ``export`` writes records into one,
``queries`` holds the canned SQL (one text for every engine), ``engines`` the small per-engine
adapters that run it.
"""
