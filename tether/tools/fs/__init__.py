"""Long context through the file system: corpora as directory trees, the ``fs`` tool set, the ``longctx`` suite.

- ``corpus``: build a corpus tree from JSONL / a folder / one long text.
- ``tools``: ``FsToolSet`` (ls, tree, find, grep, read, wc, shell, python) running in a sandbox.
- ``generator``: seeded synthetic corpora with planted, verifiable facts.
- ``suite``: the ``longctx`` suite (modes ``fs``, ``full``, ``rag``); ``expert``: a scripted expert policy.
"""
