"""Adapters that put muscle-mem under agent frameworks, one module per framework.

Nothing is imported here: each adapter imports its framework, an optional extra
(``pip install 'muscle-mem[langchain]'``), only when its own module is imported, so
``import muscle_mem`` never pays for a framework it does not use.
"""
