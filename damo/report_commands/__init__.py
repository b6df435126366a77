"""The command-line face of the reports whose ``--help`` and option errors must stay light.

Each module here holds a report's user text (``DESCRIPTION``, ``EXAMPLES``), its options
(``add_arguments``) and a ``run`` that imports the report's own module (numpy, the analysis)
only then. So ``damo report heats --help`` or a mistyped option answers without loading numpy,
rich or matplotlib (tests/test_report_startup.py).
"""
