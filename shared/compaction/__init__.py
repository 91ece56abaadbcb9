"""Compaction: closed hours of ``raw/<source>`` become one Delta table per source, ``curated/<source>``.

The modules here are pure (paths, plans, Arrow tables, commit metadata, the slicing of an hour)
except ``delta_table``, the one place that imports ``deltalake`` and does the table's I/O,
``rewrite``, which rewrites one hour with a lake store and a table in bounded memory, and ``job``,
which runs one compaction. Nothing imports ``delta_table`` at module level outside ``rewrite`` and
``job``, so the processing functions' cold start does not load ``deltalake``.
"""
