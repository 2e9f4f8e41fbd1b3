"""The PostgreSQL backend: one server holds every run of every node and colleague.

``connect`` opens a connection from a ``postgresql://`` URL with one-line errors (never
showing the password), ``schema`` checks that the database is greenprof's and migrates it
(the SQLite schema's semantics), ``sink`` is the writer's COPY-based sink, ``reader`` the
read backend and ``summaries`` its condensing queries and CSV streams. psycopg is
imported only here, and only when a URL is used.
"""
