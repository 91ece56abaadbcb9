"""Compaction: closed hours of ``raw/<source>`` become one Delta table per source, ``curated/<source>``.

The modules here are pure (paths, plans, Arrow tables, commit metadata) except ``delta_table``,
the one place that imports ``deltalake`` and does the table's I/O, and ``job``, which runs one
compaction with a lake store and a table. Nothing imports ``delta_table`` at module level
outside ``job``, so the processing functions' cold start does not load ``deltalake``.
"""
