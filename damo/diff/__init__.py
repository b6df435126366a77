"""``damo report diff``: compare records, or sets of repeated records, for CI regression gates.

- ``analysis``: per-record metrics and mapped areas, area alignment, heat changes (``compare``);
- ``gates``: ``--fail-if`` expressions and their noise-aware evaluation;
- ``render``: text, rich, markdown, JSON (docs/diff-schema.json) and the heatmap-diff image;
- ``command``: the report's options and ``run``.
"""
