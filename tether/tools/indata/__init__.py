"""InData: secure, verified data analysis through a fixed tool set (see docs/indata.md).

The model never sees raw data or writes code: it composes calls to ``InDataToolSet``
(``tools.py``) over tables held in DuckDB (``engine.py``) under a privacy policy
(``policy.py``). ``suite.py`` is the Easy/Medium/Hard benchmark, ``oracle.py`` its
scripted oracle, ``cli.py`` the one-call-at-a-time entry point behind ``tether tools call``.
"""
